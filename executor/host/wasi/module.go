// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"context"
	"encoding/binary"
	"strings"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// ModuleName is the module WASI preview 1 guests import.
const ModuleName = "wasi_snapshot_preview1"

// Instance is the running guest instance a host function serves: what the
// functions of this package need of it. Host functions find it in their
// context (WithInstance); one whose context carries none serves an
// instance without arguments, environment or descriptors.
type Instance interface {
	// Args is the guest's argv.
	Args() []string
	// Environ is the guest's environment, "NAME=value" entries, as
	// environ_get hands it over.
	Environ() []string
	// Table is the guest's descriptor table.
	Table() *Table
	HostCalls
}

// HostCalls is told by the guard, where the WASI host has one (see
// Instantiate), of the host calls of an instance: for each call, CallHost; then, unless the guard ends the guest
// there because it is stopped, EnterHost; then LeaveHost when the call
// returns, or AbortHost when it does not (proc_exit, a trap, a stop).
// wazero also aborts a call that was left (its compiler, when the guard
// ends the guest as it comes back) or never entered, so AbortHost must
// count out only a call still in. An instance's host calls do not nest.
type HostCalls interface {
	// CallHost: the guest calls the host.
	CallHost()
	// EnterHost: the guest is inside the host call.
	EnterHost()
	// LeaveHost: the host call returned; the guest goes back to its own
	// code (or, stopped, is ended) once LeaveHost returns.
	LeaveHost()
	// AbortHost: the host call did not return.
	AbortHost()
}

// HostCallCount is what an instance keeps of its host calls for
// HostCalls: the calls it made, and whether it is inside one. wazero may
// report an abort of a call that already returned or never entered, so a
// call is counted out once, by Leave or Abort, whichever comes (an
// instance's host calls do not nest: it is inside one at most).
type HostCallCount struct {
	made   atomic.Uint64
	inside atomic.Int32
}

// Call counts a host call made.
func (c *HostCallCount) Call() { c.made.Add(1) }

// Enter counts the guest into a host call.
func (c *HostCallCount) Enter() { c.inside.Add(1) }

// Leave counts the guest out of its host call.
func (c *HostCallCount) Leave() { c.inside.Add(-1) }

// Abort counts out a host call that did not return, unless Leave did.
func (c *HostCallCount) Abort() {
	for {
		n := c.inside.Load()
		if n <= 0 || c.inside.CompareAndSwap(n, n-1) {
			return
		}
	}
}

// Made is the count of host calls made.
func (c *HostCallCount) Made() uint64 { return c.made.Load() }

// Inside is the count of host calls the guest is inside: 0 or 1.
func (c *HostCallCount) Inside() int32 { return c.inside.Load() }

// instanceKey carries the running instance in the context wazero hands
// host functions.
type instanceKey struct{}

// WithInstance is ctx carrying in, for the host functions its guest calls:
// the context the instance's module is instantiated and called with.
func WithInstance(ctx context.Context, in Instance) context.Context {
	return context.WithValue(ctx, instanceKey{}, in)
}

// instanceOf is the instance ctx carries, if any.
func instanceOf(ctx context.Context) (Instance, bool) {
	in, ok := ctx.Value(instanceKey{}).(Instance)
	return in, ok
}

// none is the instance of a call whose context carries none.
type none struct{ table *Table }

func (n none) Args() []string    { return nil }
func (n none) Environ() []string { return nil }
func (n none) Table() *Table     { return n.table }
func (none) CallHost()           {}
func (none) EnterHost()          {}
func (none) LeaveHost()          {}
func (none) AbortHost()          {}

// instance is the instance ctx carries, or one without anything.
func instance(ctx context.Context) Instance {
	if in, ok := instanceOf(ctx); ok {
		return in
	}
	return none{table: NewTable(Stdio{})}
}

// table is the descriptor table of the instance ctx carries.
func table(ctx context.Context) *Table { return instance(ctx).Table() }

// le is WASI's byte order.
var le = binary.LittleEndian

// function is one function of the host module: its name, its Go
// implementation, and its parameters, named as in the WASI preview 1
// specification ("name" an i32, "name:i64" an i64). Every function
// returns an errno but proc_exit.
type function struct {
	name   string
	fn     api.GoModuleFunc
	params []string
}

// functions are the host module's: all of WASI preview 1.
var functions = []function{
	{"args_get", argsGet, []string{"argv", "argv_buf"}},
	{"args_sizes_get", argsSizesGet, []string{"result.argc", "result.argv_len"}},
	{"environ_get", environGet, []string{"environ", "environ_buf"}},
	{"environ_sizes_get", environSizesGet, []string{"result.environc", "result.environv_len"}},
	{"clock_res_get", clockResGet, []string{"id", "result.resolution"}},
	{"clock_time_get", clockTimeGet, []string{"id", "precision:i64", "result.timestamp"}},
	{"fd_advise", fdAdvise, []string{"fd", "offset:i64", "len:i64", "advice"}},
	{"fd_allocate", fdAllocate, []string{"fd", "offset:i64", "len:i64"}},
	{"fd_close", fdClose, []string{"fd"}},
	{"fd_datasync", fdDatasync, []string{"fd"}},
	{"fd_fdstat_get", fdFdstatGet, []string{"fd", "result.stat"}},
	{"fd_fdstat_set_flags", fdFdstatSetFlags, []string{"fd", "flags"}},
	{"fd_fdstat_set_rights", fdFdstatSetRights, []string{"fd", "fs_rights_base:i64", "fs_rights_inheriting:i64"}},
	{"fd_filestat_get", fdFilestatGet, []string{"fd", "result.buf"}},
	{"fd_filestat_set_size", fdFilestatSetSize, []string{"fd", "size:i64"}},
	{"fd_filestat_set_times", fdFilestatSetTimes, []string{"fd", "atim:i64", "mtim:i64", "fst_flags"}},
	{"fd_pread", fdPread, []string{"fd", "iovs", "iovs_len", "offset:i64", "result.nread"}},
	{"fd_prestat_get", fdPrestatGet, []string{"fd", "result.prestat"}},
	{"fd_prestat_dir_name", fdPrestatDirName, []string{"fd", "path", "path_len"}},
	{"fd_pwrite", fdPwrite, []string{"fd", "iovs", "iovs_len", "offset:i64", "result.nwritten"}},
	{"fd_read", fdRead, []string{"fd", "iovs", "iovs_len", "result.nread"}},
	{"fd_readdir", fdReaddir, []string{"fd", "buf", "buf_len", "cookie:i64", "result.bufused"}},
	{"fd_renumber", fdRenumber, []string{"fd", "to"}},
	{"fd_seek", fdSeek, []string{"fd", "offset:i64", "whence", "result.newoffset"}},
	{"fd_sync", fdSync, []string{"fd"}},
	{"fd_tell", fdTell, []string{"fd", "result.offset"}},
	{"fd_write", fdWrite, []string{"fd", "iovs", "iovs_len", "result.nwritten"}},
	{"path_create_directory", pathCreateDirectory, []string{"fd", "path", "path_len"}},
	{"path_filestat_get", pathFilestatGet, []string{"fd", "flags", "path", "path_len", "result.buf"}},
	{"path_filestat_set_times", pathFilestatSetTimes, []string{"fd", "flags", "path", "path_len", "atim:i64", "mtim:i64", "fst_flags"}},
	{"path_link", pathLink, []string{"old_fd", "old_flags", "old_path", "old_path_len", "new_fd", "new_path", "new_path_len"}},
	{"path_open", pathOpen, []string{"fd", "dirflags", "path", "path_len", "oflags", "fs_rights_base:i64", "fs_rights_inheriting:i64", "fdflags", "result.opened_fd"}},
	{"path_readlink", pathReadlink, []string{"fd", "path", "path_len", "buf", "buf_len", "result.bufused"}},
	{"path_remove_directory", pathRemoveDirectory, []string{"fd", "path", "path_len"}},
	{"path_rename", pathRename, []string{"fd", "old_path", "old_path_len", "new_fd", "new_path", "new_path_len"}},
	{"path_symlink", pathSymlink, []string{"old_path", "old_path_len", "fd", "new_path", "new_path_len"}},
	{"path_unlink_file", pathUnlinkFile, []string{"fd", "path", "path_len"}},
	{"poll_oneoff", pollOneoff, []string{"in", "out", "nsubscriptions", "result.nevents"}},
	{"proc_exit", procExit, []string{"rval"}},
	{"proc_raise", procRaise, []string{"sig"}},
	{"sched_yield", schedYield, nil},
	{"random_get", randomGet, []string{"buf", "buf_len"}},
	{"sock_accept", sockAccept, []string{"fd", "flags", "result.fd"}},
	{"sock_recv", sockRecv, []string{"fd", "ri_data", "ri_data_len", "ri_flags", "result.ro_datalen", "result.ro_flags"}},
	{"sock_send", sockSend, []string{"fd", "si_data", "si_data_len", "si_flags", "result.so_datalen"}},
	{"sock_shutdown", sockShutdown, []string{"fd", "how"}},
	// WasmEdge's socket extension (outbound.go).
	{"sock_open", sockOpen, []string{"af", "socktype", "result.fd"}},
	{"sock_connect", sockConnect, []string{"fd", "addr", "port"}},
	{"sock_bind", sockBind, []string{"fd", "addr", "port"}},
	{"sock_listen", sockListen, []string{"fd", "backlog"}},
	{"sock_getlocaladdr", sockAddr(false, false), []string{"fd", "addr", "result.port"}},
	{"sock_getpeeraddr", sockAddr(true, false), []string{"fd", "addr", "result.port"}},
	{"sock_getsockopt", sockGetsockopt, []string{"fd", "level", "name", "flag", "flag_size"}},
	{"sock_setsockopt", sockSetsockopt, []string{"fd", "level", "name", "flag", "flag_size"}},
	{"sock_getaddrinfo", sockGetaddrinfo, []string{"node", "node_len", "server", "server_len", "hint", "res", "max_res_len", "result.res_len"}},
	{"sock_recv_from", sockRecvFrom(true), []string{"fd", "ri_data", "ri_data_len", "addr", "ri_flags", "result.port", "result.ro_datalen", "result.ro_flags"}},
	{"sock_send_to", sockSendTo, []string{"fd", "si_data", "si_data_len", "addr", "port", "si_flags", "result.so_datalen"}},
}

// variants are the other signatures of functions that guests import in
// more than one: WasmEdge 0.11's socket extension, which Rust's
// wasmedge_wasi_socket and WasmEdge's C header still import for some
// functions. A guest gets, per function, the variant its import matches
// by its number of parameters (as WasmEdge itself chooses).
var variants = []function{
	{"sock_accept", sockAcceptV1, []string{"fd", "result.fd"}},
	{"sock_getlocaladdr", sockAddr(false, true), []string{"fd", "addr", "result.addr_type", "result.port"}},
	{"sock_getpeeraddr", sockAddr(true, true), []string{"fd", "addr", "result.addr_type", "result.port"}},
	{"sock_recv_from", sockRecvFrom(false), []string{"fd", "ri_data", "ri_data_len", "addr", "ri_flags", "result.ro_datalen", "result.ro_flags"}},
}

// Instantiate instantiates this package's WASI preview 1 host module in
// r, with the guard (guard.go) when guard is set (r compiles guests
// without the per-loop check).
//
// imports are the functions the guest imports. Where any is of this
// module, the host module has those functions only: the compiler makes
// native code for each function a host module has, which for all of them
// is most of what instantiating costs (0.7 ms of a small C module's
// cached start, which imports 8 of them), and r holds one guest's module
// only (a program's runtime). They also choose the variant of a function
// that has more than one signature (see variants). Without them, the host
// module has every function, each with its first signature.
func Instantiate(ctx context.Context, r wazero.Runtime, guard bool, imports ...api.FunctionDefinition) (api.Closer, error) {
	wanted := map[string]int{} // the number of parameters imported, by name
	for _, def := range imports {
		if module, name, ok := def.Import(); ok && module == ModuleName {
			wanted[name] = len(def.ParamTypes())
		}
	}
	b := r.NewHostModuleBuilder(ModuleName)
	for _, f := range functions {
		if _, ok := wanted[f.name]; !ok && len(wanted) > 0 {
			continue
		}
		for _, v := range variants {
			if v.name == f.name && wanted[f.name] == len(v.params) {
				f = v
			}
		}
		var types []api.ValueType
		names := make([]string, len(f.params))
		for i, p := range f.params {
			name, t, _ := strings.Cut(p, ":")
			names[i] = name
			if t == "i64" {
				types = append(types, api.ValueTypeI64)
			} else {
				types = append(types, api.ValueTypeI32)
			}
		}
		results := []api.ValueType{api.ValueTypeI32}
		if f.name == "proc_exit" {
			results = nil
		}
		b.NewFunctionBuilder().
			WithGoModuleFunction(f.fn, types, results).
			WithParameterNames(names...).
			Export(f.name)
	}
	if guard {
		ctx = guardHostCalls(ctx)
	}
	return b.Instantiate(ctx)
}
