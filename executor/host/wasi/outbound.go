// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/api"
	"golang.org/x/sys/unix"
)

// Outbound connections, through WasmEdge's socket extension to WASI
// preview 1, the ABI that Rust's wasmedge_wasi_socket (and tokio, hyper
// and reqwest built on it), Go's github.com/stealthrocket/net and C's
// WasmEdge socket header import from wasi_snapshot_preview1:
//
//	sock_open(af, socktype, result.fd)
//	sock_connect(fd, addr *WasiAddress, port)
//	sock_getaddrinfo(node, node_len, service, service_len, hints, res, max_len, result.res_len)
//	sock_getlocaladdr, sock_getpeeraddr: (fd, addr, result.port) or, WasmEdge 0.11's, (fd, addr, result.addr_type, result.port)
//	sock_getsockopt(fd, level, name, value, len), sock_setsockopt(fd, level, name, value, len)
//	sock_bind, sock_listen: refused (EACCES): a guest's listeners are the job's
//	sock_recv_from, sock_send_to: on a connection, as sock_recv; send_to ENOTSUP
//
// A WasiAddress is {buf u32, buf_len u32}: buf_len 4 or 16 is a raw IPv4
// or IPv6 address; 128 is WasmEdge 0.12's storage, the family (u16: 1
// IPv4, 2 IPv6) at 0 and the address from byte 2. Ports travel apart, as
// numbers. Only TCP: a datagram socket is ENOTSUP.
//
// Every connect is checked by the task's Network (its outbound policy)
// against the address and port, and the names the guest resolved to that
// address (sock_getaddrinfo); a refused one fails with EACCES.

// WasmEdge's socket extension's values.
const (
	afInet4 = 1
	afInet6 = 2
	afUnix  = 3

	socktypeDgram  = 1
	socktypeStream = 2

	solSocket = 0
	// ipprotoTCP and tcpNodelay: the TCP level and TCP_NODELAY, which
	// WasmEdge lacks and wasi-go added.
	ipprotoTCP = 6
	tcpNodelay = 15

	soReuseaddr  = 0
	soType       = 1
	soError      = 2
	soBroadcast  = 4
	soSndbuf     = 5
	soRcvbuf     = 6
	soKeepalive  = 7
	soLinger     = 9
	soRcvtimeo   = 11
	soSndtimeo   = 12
	soAcceptconn = 13

	// maxLenByValue tells a getsockopt length passed by value (Go's
	// libraries) from a pointer to it (WasmEdge's ABI, Rust's and C's).
	maxLenByValue = 1024

	addrStorageSize = 128

	errnoAfnosupport   = 5
	errnoInprogress    = 26
	errnoIsconn        = 30
	errnoNoprotoopt    = 50
	errnoAIFail        = 80
	errnoAIFamily      = 81
	errnoAIMemory      = 82
	errnoAINoname      = 84
	errnoAIService     = 85
	errnoAISocktype    = 86
	addrinfoSize       = 28
	wasiSockaddrSize   = 12
	sockaddrDataSize4  = 14
	sockaddrDataSize6  = 26
	nativeSockaddrLen4 = 16
	nativeSockaddrLen6 = 28
)

// ErrNotAllowed is what a Network's Resolve returns for a name the task
// may not resolve.
var ErrNotAllowed = errors.New("not allowed by the task's outbound rules")

// Network is a task's way out: what sock_open, sock_connect and
// sock_getaddrinfo go through. A table without one opens no socket.
type Network interface {
	// Socket makes a TCP socket of family (unix.AF_INET or AF_INET6),
	// non-blocking and close-on-exec, where the task's connections start:
	// its network namespace.
	Socket(family int) (int, error)
	// Resolve resolves name with the task's resolver: ErrNotAllowed when
	// the task's rules do not let it.
	Resolve(ctx context.Context, name string) ([]netip.Addr, error)
	// Allow says whether the task may connect to addr, names being what
	// it resolved to addr's address; a refusal is recorded (the task's
	// event, its counters), and so is an allowed connect.
	Allow(addr netip.AddrPort, names []string) bool
}

// SetNetwork gives the table's guest its way out.
func (t *Table) SetNetwork(n Network) { t.network = n }

// sockOpen is WasmEdge's sock_open(af, socktype, result.fd).
func sockOpen(ctx context.Context, mod api.Module, stack []uint64) {
	af, socktype, result := uint32(stack[0]), uint32(stack[1]), uint32(stack[2])
	t := table(ctx)
	var family int
	switch af {
	case afInet4:
		family = unix.AF_INET
	case afInet6:
		family = unix.AF_INET6
	case afUnix:
		stack[0] = errnoAfnosupport
		return
	default:
		stack[0] = errnoInval
		return
	}
	switch {
	case socktype == socktypeDgram:
		stack[0] = errnoNotsup // TCP only
		return
	case socktype != socktypeStream:
		stack[0] = errnoInval
		return
	case t.network == nil:
		stack[0] = errnoAcces
		return
	case t.full():
		stack[0] = errnoMfile
		return
	}
	fd, err := t.network.Socket(family)
	if err != nil {
		stack[0] = uint64(fromErr(err))
		return
	}
	d := &descriptor{filetype: filetypeSocketStream, base: rightsSocket, sock: &Socket{fd: fd, outbound: true, family: family}}
	stack[0] = uint64(t.give(mod.Memory(), d, result))
}

// readAddress reads a WasiAddress at ptr: its IP address.
func readAddress(mem api.Memory, ptr uint32) (netip.Addr, errno) {
	head, ok := mem.Read(ptr, 8)
	if !ok {
		return netip.Addr{}, errnoFault
	}
	buf, ok := mem.Read(le.Uint32(head), le.Uint32(head[4:]))
	if !ok {
		return netip.Addr{}, errnoFault
	}
	switch len(buf) {
	case 4:
		return netip.AddrFrom4([4]byte(buf)), errnoSuccess
	case 16:
		return netip.AddrFrom16([16]byte(buf)), errnoSuccess
	case addrStorageSize:
		switch le.Uint16(buf) {
		case afInet4:
			return netip.AddrFrom4([4]byte(buf[2:6])), errnoSuccess
		case afInet6:
			return netip.AddrFrom16([16]byte(buf[2:18])), errnoSuccess
		}
		return netip.Addr{}, errnoAfnosupport
	}
	return netip.Addr{}, errnoInval
}

// sockaddrOf is addr:port as the host's socket calls take it, for a
// socket of family.
func sockaddrOf(addr netip.Addr, port uint16, family int) (unix.Sockaddr, errno) {
	if family == unix.AF_INET6 {
		return &unix.SockaddrInet6{Addr: addr.As16(), Port: int(port)}, errnoSuccess
	}
	if !addr.Unmap().Is4() {
		return nil, errnoAfnosupport
	}
	return &unix.SockaddrInet4{Addr: addr.Unmap().As4(), Port: int(port)}, errnoSuccess
}

// sockConnect is WasmEdge's sock_connect(fd, addr, port). A non-blocking
// socket's connect in progress is EINPROGRESS; the guest polls it for
// writing, then reads SO_ERROR.
func sockConnect(ctx context.Context, mod api.Module, stack []uint64) {
	fd, ptr, port := uint32(stack[0]), uint32(stack[1]), uint32(stack[2])
	t := table(ctx)
	d, e := t.socketOf(fd, 0)
	switch {
	case e != errnoSuccess:
	case !d.sock.outbound:
		e = errnoIsconn // a listener or a connection accepted on one
	case port == 0 || port > 65535:
		e = errnoInval
	}
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	addr, e := readAddress(mod.Memory(), ptr)
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	if addr.Unmap().IsUnspecified() {
		// The kernel connects to the unspecified address as to loopback:
		// so is it checked, and connected.
		addr = netip.IPv6Loopback()
		if d.sock.family == unix.AF_INET {
			addr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
	}
	sa, e := sockaddrOf(addr, uint16(port), d.sock.family)
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	if !t.network.Allow(netip.AddrPortFrom(addr.Unmap(), uint16(port)), t.resolved[addr.Unmap()]) {
		stack[0] = errnoAcces
		return
	}
	err := unix.Connect(d.sock.fd, sa)
	switch {
	case err == nil:
		stack[0] = errnoSuccess
	case !errors.Is(err, unix.EINPROGRESS):
		stack[0] = uint64(fromErr(err))
	case d.flags&fdflagNonblock != 0:
		stack[0] = errnoInprogress
	default:
		if !t.wait(ctx, d.sock.fd, true, d.sock.sndTimeout) {
			// SO_SNDTIMEO passed: still in progress, as Linux says.
			stack[0] = errnoInprogress
			return
		}
		soerr, err := unix.GetsockoptInt(d.sock.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err == nil && soerr != 0 {
			err = unix.Errno(soerr)
		}
		stack[0] = uint64(fromErr(err))
	}
}

// sockBind is sock_bind(fd, addr, port), refused: a guest listens on
// what the job grants it (listeners), not on what it binds.
func sockBind(_ context.Context, _ api.Module, stack []uint64) { stack[0] = errnoAcces }

// sockListen is sock_listen(fd, backlog), refused as sock_bind is.
func sockListen(_ context.Context, _ api.Module, stack []uint64) { stack[0] = errnoAcces }

// sockSendTo is sock_send_to(fd, iovs, iovs_len, addr, port, flags,
// result.nwritten): datagrams only, which this host has none of.
func sockSendTo(_ context.Context, _ api.Module, stack []uint64) { stack[0] = errnoNotsup }

// sockRecvFrom is sock_recv_from: on a connection, sock_recv with the
// peer's address written too. WasmEdge 0.12's (fd, iovs, iovs_len, addr,
// flags, result.port, result.nread, result.roflags) or 0.11's without
// result.port.
func sockRecvFrom(withPort bool) api.GoModuleFunc {
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		fd, iovs, n, addrPtr, flags := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3]), uint16(stack[4])
		rest := stack[5:]
		var portPtr uint32
		if withPort {
			portPtr, rest = uint32(rest[0]), rest[1:]
		}
		result, roflags := uint32(rest[0]), uint32(rest[1])
		t, mem := table(ctx), mod.Memory()
		d, e := t.socketOf(fd, rightFdRead)
		if e == errnoSuccess && flags&^(riflagRecvPeek|riflagWaitall) != 0 {
			e = errnoInval
		}
		if e == errnoSuccess {
			// The address's buffer is checked before anything is
			// received: a failure must not lose what was waiting.
			e = checkAddressBuffer(mem, addrPtr)
		}
		if e != errnoSuccess {
			stack[0] = uint64(e)
			return
		}
		got, e := d.sock.recv(ctx, t, mem, iovs, n, flags, d.flags&fdflagNonblock != 0)
		if e == errnoSuccess {
			if sa, err := unix.Getpeername(d.sock.fd); err == nil {
				e = writeAddress(mem, addrPtr, 0, portPtr, sa)
			}
		}
		if e == errnoSuccess && !mem.WriteUint16Le(roflags, 0) {
			e = errnoFault
		}
		writeResult32(mem, stack, result, got, e)
	}
}

// sockAddr is sock_getlocaladdr (peer false) or sock_getpeeraddr: WasmEdge
// 0.12's (fd, addr, result.port) or, with addrType, 0.11's (fd, addr,
// result.addr_type, result.port).
func sockAddr(peer, addrType bool) api.GoModuleFunc {
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		fd, addrPtr := uint32(stack[0]), uint32(stack[1])
		var typePtr, portPtr uint32
		if addrType {
			typePtr, portPtr = uint32(stack[2]), uint32(stack[3])
		} else {
			portPtr = uint32(stack[2])
		}
		d, e := table(ctx).socketOf(fd, 0)
		if e != errnoSuccess {
			stack[0] = uint64(e)
			return
		}
		var sa unix.Sockaddr
		var err error
		if peer {
			sa, err = unix.Getpeername(d.sock.fd)
		} else {
			sa, err = unix.Getsockname(d.sock.fd)
		}
		if err != nil {
			stack[0] = uint64(fromErr(err))
			return
		}
		stack[0] = uint64(writeAddress(mod.Memory(), addrPtr, typePtr, portPtr, sa))
	}
}

// writeAddress writes sa into the WasiAddress at addrPtr (in the form its
// buf_len asks: 4 or 16 raw bytes, or 128 of storage), its port at
// portPtr and, when typePtr is set, its type (4 or 6, WasmEdge 0.11's).
func writeAddress(mem api.Memory, addrPtr, typePtr, portPtr uint32, sa unix.Sockaddr) errno {
	var ip []byte
	var port int
	var af uint16
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		ip, port, af = a.Addr[:], a.Port, afInet4
	case *unix.SockaddrInet6:
		ip, port, af = a.Addr[:], a.Port, afInet6
	default:
		return errnoAfnosupport
	}
	head, ok := mem.Read(addrPtr, 8)
	if !ok {
		return errnoFault
	}
	buf, ok := mem.Read(le.Uint32(head), le.Uint32(head[4:]))
	if !ok {
		return errnoFault
	}
	switch {
	case len(buf) == addrStorageSize:
		clear(buf)
		le.PutUint16(buf, af)
		copy(buf[2:], ip)
	case len(buf) == len(ip):
		copy(buf, ip)
	case len(buf) == 16 && len(ip) == 4:
		addr := netip.AddrFrom4([4]byte(ip)).As16()
		copy(buf, addr[:])
	default:
		return errnoInval
	}
	if typePtr != 0 {
		kind := uint32(4)
		if af == afInet6 {
			kind = 6
		}
		if !mem.WriteUint32Le(typePtr, kind) {
			return errnoFault
		}
	}
	if portPtr != 0 && !mem.WriteUint32Le(portPtr, uint32(port)) {
		return errnoFault
	}
	return errnoSuccess
}

// checkAddressBuffer checks the WasiAddress at addrPtr: in the guest's
// memory, with a buffer of 4, 16 or 128 bytes.
func checkAddressBuffer(mem api.Memory, addrPtr uint32) errno {
	head, ok := mem.Read(addrPtr, 8)
	if !ok {
		return errnoFault
	}
	n := le.Uint32(head[4:])
	if n != 4 && n != 16 && n != addrStorageSize {
		return errnoInval
	}
	if _, ok := mem.Read(le.Uint32(head), n); !ok {
		return errnoFault
	}
	return errnoSuccess
}

// optLen is getsockopt's length argument: a length by value (Go's
// libraries) or a pointer to one (WasmEdge's ABI), which is written back.
func optLen(mem api.Memory, arg uint32) (n uint32, ptr uint32, e errno) {
	if arg < maxLenByValue {
		return arg, 0, errnoSuccess
	}
	n, ok := mem.ReadUint32Le(arg)
	if !ok {
		return 0, 0, errnoFault
	}
	return n, arg, errnoSuccess
}

// timeval is a 16-byte struct timeval (i64 seconds, i64 microseconds).
const timevalSize = 16

// sockGetsockopt is sock_getsockopt(fd, level, name, value, len).
func sockGetsockopt(ctx context.Context, mod api.Module, stack []uint64) {
	fd, level, name, valPtr, lenArg := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3]), uint32(stack[4])
	mem := mod.Memory()
	d, e := table(ctx).socketOf(fd, 0)
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	n, lenPtr, e := optLen(mem, lenArg)
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	s := d.sock
	var v int
	var err error
	size := uint32(4)
	switch {
	case level == solSocket && name == soError:
		var soerr int
		if soerr, err = unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && soerr != 0 {
			v = int(fromErr(unix.Errno(soerr)))
		}
	case level == solSocket && name == soType:
		v = socktypeStream
	case level == solSocket && name == soAcceptconn:
		v, err = unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	case level == solSocket && (name == soRcvtimeo || name == soSndtimeo):
		timeout := s.rcvTimeout
		if name == soSndtimeo {
			timeout = s.sndTimeout
		}
		b, ok := mem.Read(valPtr, timevalSize)
		if n < timevalSize || !ok {
			stack[0] = errnoInval
			return
		}
		le.PutUint64(b, uint64(timeout/time.Second))
		le.PutUint64(b[8:], uint64(timeout%time.Second/time.Microsecond))
		size = timevalSize
	default:
		lvl, opt, ok := hostOption(level, name)
		if !ok {
			stack[0] = errnoNoprotoopt
			return
		}
		v, err = unix.GetsockoptInt(s.fd, lvl, opt)
	}
	if err != nil {
		stack[0] = uint64(fromErr(err))
		return
	}
	if size == 4 {
		if n < 4 || !mem.WriteUint32Le(valPtr, uint32(v)) {
			stack[0] = errnoInval
			return
		}
	}
	if lenPtr != 0 && !mem.WriteUint32Le(lenPtr, size) {
		stack[0] = errnoFault
		return
	}
	stack[0] = errnoSuccess
}

// hostOption is the host's level and name of an integer option.
func hostOption(level, name uint32) (int, int, bool) {
	if level == ipprotoTCP && name == tcpNodelay {
		return unix.IPPROTO_TCP, unix.TCP_NODELAY, true
	}
	if level != solSocket {
		return 0, 0, false
	}
	switch name {
	case soReuseaddr:
		return unix.SOL_SOCKET, unix.SO_REUSEADDR, true
	case soBroadcast:
		return unix.SOL_SOCKET, unix.SO_BROADCAST, true
	case soSndbuf:
		return unix.SOL_SOCKET, unix.SO_SNDBUF, true
	case soRcvbuf:
		return unix.SOL_SOCKET, unix.SO_RCVBUF, true
	case soKeepalive:
		return unix.SOL_SOCKET, unix.SO_KEEPALIVE, true
	}
	return 0, 0, false
}

// sockSetsockopt is sock_setsockopt(fd, level, name, value, len).
func sockSetsockopt(ctx context.Context, mod api.Module, stack []uint64) {
	fd, level, name, valPtr, n := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3]), uint32(stack[4])
	mem := mod.Memory()
	d, e := table(ctx).socketOf(fd, 0)
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	if level == solSocket && (name == soRcvtimeo || name == soSndtimeo) {
		b, ok := mem.Read(valPtr, timevalSize)
		if n < timevalSize || !ok {
			stack[0] = errnoInval
			return
		}
		sec, usec := int64(le.Uint64(b)), int64(le.Uint64(b[8:]))
		if sec < 0 || usec < 0 || usec >= 1e6 || sec > 1<<31 {
			stack[0] = errnoInval
			return
		}
		timeout := time.Duration(sec)*time.Second + time.Duration(usec)*time.Microsecond
		if name == soRcvtimeo {
			d.sock.rcvTimeout = timeout
		} else {
			d.sock.sndTimeout = timeout
		}
		stack[0] = errnoSuccess
		return
	}
	lvl, opt, ok := hostOption(level, name)
	if !ok {
		stack[0] = errnoNoprotoopt
		return
	}
	v, ok := mem.ReadUint32Le(valPtr)
	if n < 4 || !ok {
		stack[0] = errnoInval
		return
	}
	stack[0] = uint64(fromErr(unix.SetsockoptInt(d.sock.fd, lvl, opt, int(int32(v)))))
}

// services are the service names sock_getaddrinfo knows.
var services = map[string]uint16{"http": 80, "https": 443}

// sockGetaddrinfo is WasmEdge's sock_getaddrinfo(node, node_len, service,
// service_len, hints, res, max_len, result.res_len): it resolves node on
// the host, with the task's resolver, if the task's rules let it, into
// the records the guest allocated and linked (res points at the first).
func sockGetaddrinfo(ctx context.Context, mod api.Module, stack []uint64) {
	mem := mod.Memory()
	t := table(ctx)
	node, ok1 := mem.Read(uint32(stack[0]), uint32(stack[1]))
	service, ok2 := mem.Read(uint32(stack[2]), uint32(stack[3]))
	hints, ok3 := mem.Read(uint32(stack[4]), addrinfoSize)
	first, ok4 := mem.ReadUint32Le(uint32(stack[5]))
	maxLen, resultPtr := uint32(stack[6]), uint32(stack[7])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		stack[0] = errnoFault
		return
	}
	name, _, _ := strings.Cut(string(node), "\x00")
	svc, _, _ := strings.Cut(string(service), "\x00")
	family, socktype := hints[2], hints[3]
	switch {
	case name == "":
		stack[0] = errnoAINoname
		return
	case maxLen < 1:
		stack[0] = errnoAIMemory
		return
	case family != 0 && family != afInet4 && family != afInet6:
		stack[0] = errnoAIFamily
		return
	case socktype != 0 && socktype != socktypeStream:
		stack[0] = errnoAISocktype
		return
	case t.network == nil:
		stack[0] = errnoAcces
		return
	}
	var port uint16
	if svc != "" {
		if p, err := strconv.ParseUint(svc, 10, 16); err == nil {
			port = uint16(p)
		} else if p, ok := services[strings.ToLower(svc)]; ok {
			port = p
		} else {
			stack[0] = errnoAIService
			return
		}
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(name); err == nil {
		addrs = []netip.Addr{a.Unmap()}
	} else {
		found, err := t.network.Resolve(ctx, name)
		var dnsErr *net.DNSError
		switch {
		case errors.Is(err, ErrNotAllowed):
			stack[0] = errnoAcces
			return
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			stack[0] = errnoAINoname
			return
		case err != nil:
			stack[0] = errnoAIFail
			return
		}
		for _, a := range found {
			a = a.Unmap()
			if t.resolved == nil {
				t.resolved = map[netip.Addr][]string{}
			}
			t.resolved[a] = appendName(t.resolved[a], name)
			addrs = append(addrs, a)
		}
	}
	n := uint32(0)
	at := first
	for _, a := range addrs {
		if n == maxLen || at == 0 {
			break
		}
		if family == afInet4 && !a.Is4() || family == afInet6 && !a.Is6() {
			continue
		}
		next, e := putAddrinfo(mem, at, a, port)
		if e != errnoSuccess {
			stack[0] = uint64(e)
			return
		}
		n++
		at = next
	}
	if n == 0 {
		stack[0] = errnoAINoname
		return
	}
	writeResult32(mem, stack, resultPtr, n, errnoSuccess)
}

// appendName adds name to names, once.
func appendName(names []string, name string) []string {
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return names
		}
	}
	return append(names, name)
}

// putAddrinfo fills the guest's addrinfo record at p with a:port, and
// returns the next record's address (its ai_next).
func putAddrinfo(mem api.Memory, p uint32, a netip.Addr, port uint16) (uint32, errno) {
	rec, ok := mem.Read(p, addrinfoSize)
	if !ok {
		return 0, errnoFault
	}
	sockaddrPtr := le.Uint32(rec[12:])
	next := le.Uint32(rec[24:])
	le.PutUint16(rec[0:], 0) // flags
	rec[3] = socktypeStream
	rec[4] = 1                // WasmEdge's TCP
	le.PutUint32(rec[20:], 0) // no canonical name
	sa, ok := mem.Read(sockaddrPtr, wasiSockaddrSize)
	if !ok {
		return 0, errnoFault
	}
	dataSize, native := uint32(sockaddrDataSize4), uint32(nativeSockaddrLen4)
	family := uint32(afInet4)
	if a.Is6() {
		dataSize, native, family = sockaddrDataSize6, nativeSockaddrLen6, afInet6
	}
	rec[2] = byte(family)
	le.PutUint32(rec[8:], native)
	data, ok := mem.Read(le.Uint32(sa[8:]), dataSize)
	if !ok {
		return 0, errnoFault
	}
	le.PutUint32(sa[0:], family)
	le.PutUint32(sa[4:], dataSize)
	clear(data)
	data[0], data[1] = byte(port>>8), byte(port)
	if a.Is4() {
		ip := a.As4()
		copy(data[2:], ip[:])
	} else {
		// As WasmEdge: a sockaddr_in6 without its family, the address
		// after the flow information.
		ip := a.As16()
		copy(data[6:], ip[:])
	}
	return next, errnoSuccess
}
