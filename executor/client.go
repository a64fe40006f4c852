// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// Client is the driver's connection to one executor.
//
// An executor this driver launched is reached through go-plugin, which also
// reaps the process. One found again after the driver restarted
// (Reattach) is reached over its gRPC socket directly: it is not the new
// driver's child, and go-plugin's reattached client would poll for its exit
// once a second and take a zombie (an orphan whose exit nobody has reaped
// yet, common in containers) for a live process.
type Client struct {
	rpc proto.ExecutorClient
	// Pid is the executor's process ID.
	Pid int

	// Of a launched executor.
	plugin *plugin.Client
	// Of a reattached executor.
	conn     *grpc.ClientConn
	reattach *plugin.ReattachConfig

	killOnce sync.Once

	mu sync.Mutex
	// watch is the write end of a launched executor's watch pipe (see
	// WatchFDFlag), held until a task claims the executor.
	watch *os.File
}

// LaunchConfig says how to start an executor.
type LaunchConfig struct {
	// Binary is the executable to run as the executor; empty means this
	// process's own executable, which is how the plugin runs.
	Binary string
	// Logger receives what the executor logs before it is given a task.
	Logger hclog.Logger
	// Warm, when set, has the executor prepare the modules started on this
	// node most recently while it waits for a task: a spare does. A shared
	// executor (SharedLog) reads only its Modules: how many programs of
	// ended tasks it keeps for the next task of the same module.
	Warm *Warm
	// SharedLog, when set, makes the executor the node's shared executor,
	// which runs any number of tasks and logs to this file. It exits once
	// it holds no task and no driver: the launcher until it is gone (it is
	// never Claimed), and each driver that holds Attach.
	SharedLog string
	// RunAs, with SharedLog, is the user the shared executor becomes when
	// it starts; it then runs tasks of that user only.
	RunAs *proto.RunAs
}

// Warm says what a spare executor prepares while it waits for a task: up
// to Modules of the modules started on this node in the last RecentWindow,
// most recent first (Digests first, then what the cache's record of recent
// starts adds), compiled through the cache in CacheDir for Engine, so that
// a task starting one of them skips decoding and compiling it; and,
// whatever Modules is, a runtime for Engine with the WASI host in it, for
// a module it did not prepare.
//
// Groups are the supplementary groups a spare that runs as root takes when
// it starts: those of the user most tasks run as (the plugin's
// default_user). Root's access to files does not depend on them while it
// holds CAP_DAC_OVERRIDE, and a task of that user then starts without
// setting them, one of the three credential changes that each stop every
// thread of the executor (see becomeUser in executor/host). None: the
// executor keeps its own.
type Warm struct {
	CacheDir string
	Engine   string
	Modules  int
	Digests  []string
	Groups   []uint32
}

// args are the executor's arguments that carry w.
func (w *Warm) args() []string {
	if w == nil {
		return nil
	}
	args := []string{WarmEngineFlag + "=" + w.Engine}
	if w.Modules > 0 {
		args = append(args,
			WarmCacheDirFlag+"="+w.CacheDir,
			WarmModulesFlag+"="+strconv.Itoa(w.Modules),
			WarmDigestsFlag+"="+strings.Join(w.Digests, ","))
	}
	if len(w.Groups) > 0 {
		groups := make([]string, len(w.Groups))
		for i, g := range w.Groups {
			groups[i] = strconv.FormatUint(uint64(g), 10)
		}
		args = append(args, WarmGroupsFlag+"="+strings.Join(groups, ","))
	}
	return args
}

// Launch starts an executor process in a session of its own, so that
// signals aimed at the Nomad client or the driver do not reach it and, once
// a task has claimed it (Claimed), it outlives both. Until then it belongs
// to this process: it exits when this process is gone.
func Launch(cfg LaunchConfig) (*Client, error) {
	if cfg.Binary != "" {
		return launch(cfg, cfg.Binary)
	}
	bin, embedded, err := executorBinary(cfg.Logger)
	if err != nil {
		return nil, err
	}
	c, err := launch(cfg, bin)
	if embedded && fallBack(context.Background(), err) {
		embeddedFailed(cfg.Logger, err)
		if bin, _, err = executorBinary(cfg.Logger); err != nil {
			return nil, err
		}
		return launch(cfg, bin)
	}
	return c, err
}

func launch(cfg LaunchConfig, bin string) (*Client, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create the executor's watch pipe: %w", err)
	}
	defer r.Close() // the executor has its own copy once started
	// ExtraFiles[0] is the child's descriptor 3.
	args := append([]string{Subcommand, WatchFDFlag + "=3"}, cfg.Warm.args()...)
	if cfg.SharedLog != "" {
		args = append(args, SharedFlag, SharedLogFlag+"="+cfg.SharedLog)
		if cfg.RunAs != nil {
			args = append(args, RunAsFlag+"="+RunAsArg(cfg.RunAs))
		}
	}
	cmd := command(context.Background(), bin, args...)
	cmd.ExtraFiles = []*os.File{r}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	pc := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          map[string]plugin.Plugin{PluginName: clientPlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           pluginLogger(cfg.Logger, bin),
	})
	rpcClient, err := pc.Client()
	if err == nil {
		var raw any
		if raw, err = rpcClient.Dispense(PluginName); err == nil {
			c := &Client{rpc: raw.(proto.ExecutorClient), plugin: pc, watch: w}
			if rc := pc.ReattachConfig(); rc != nil {
				c.Pid = rc.Pid
			}
			return c, nil
		}
	}
	pc.Kill()
	_ = w.Close()
	return nil, fmt.Errorf("connect to executor: %w", err)
}

// pluginLogger is logger for go-plugin, which names the logger of an
// executor's stderr after the base name of the path it ran: for the
// embedded program (/proc/<pid>/fd/N) N, which becomes the plugin
// binary's name, as it was when executors ran the plugin binary.
func pluginLogger(logger hclog.Logger, bin string) hclog.Logger {
	if logger == nil || !isEmbedded(bin) {
		return logger
	}
	self, err := pluginBinary()
	if err != nil {
		return logger
	}
	return renamingLogger{Logger: logger, from: filepath.Base(bin), to: filepath.Base(self)}
}

// renamingLogger names a sub-logger to instead of from.
type renamingLogger struct {
	hclog.Logger
	from, to string
}

func (l renamingLogger) Named(name string) hclog.Logger {
	if name == l.from {
		name = l.to
	}
	return l.Logger.Named(name)
}

// command runs bin with args. The embedded program's path
// (/proc/<pid>/fd/N) says nothing in ps: its argv[0] is the plugin binary's
// path, so that an executor shows as it did when it ran the plugin binary
// (and its comm is wasm-executor: executor/cmd/wasm-executor).
func command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	if isEmbedded(bin) {
		if self, err := pluginBinary(); err == nil {
			cmd.Args[0] = self
		}
	}
	return cmd
}

// Claimed hands a launched executor over to the task it now runs: it no
// longer exits with this process.
func (c *Client) Claimed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watch != nil {
		_ = c.watch.Close()
		c.watch = nil
	}
}

// Reattach connects to a running executor, for example after the driver
// restarted, and checks that it speaks this build's protocol.
func Reattach(rc *plugin.ReattachConfig) (*Client, error) {
	if rc == nil || rc.Addr == nil {
		return nil, errors.New("no executor address to reattach to")
	}
	if rc.Protocol != plugin.ProtocolGRPC {
		return nil, fmt.Errorf("executor %d speaks go-plugin protocol %q, not grpc", rc.Pid, rc.Protocol)
	}
	addr := rc.Addr
	conn, err := grpc.NewClient("passthrough:///executor",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, addr.Network(), addr.String())
		}))
	if err != nil {
		return nil, fmt.Errorf("connect to executor %d: %w", rc.Pid, err)
	}
	c := &Client{rpc: proto.NewExecutorClient(conn), Pid: rc.Pid, conn: conn, reattach: rc}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := c.rpc.Version(ctx, &proto.VersionRequest{}, grpc.WaitForReady(false))
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("executor %d did not answer: %w", rc.Pid, err)
	}
	if v.Protocol != ProtocolVersion {
		_ = conn.Close()
		return nil, fmt.Errorf("executor %d speaks protocol %d, this driver speaks %d", v.Pid, v.Protocol, ProtocolVersion)
	}
	if int(v.Pid) != rc.Pid {
		_ = conn.Close()
		return nil, fmt.Errorf("the executor at %s is process %d, not %d", addr, v.Pid, rc.Pid)
	}
	return c, nil
}

// ReattachConfig is what Reattach needs to find this executor again.
func (c *Client) ReattachConfig() *plugin.ReattachConfig {
	if c.plugin != nil {
		return c.plugin.ReattachConfig()
	}
	return c.reattach
}

// Version identifies the executor; with req's engine and cache directory
// set, it also reports what the node offers tasks (see VersionRequest).
func (c *Client) Version(ctx context.Context, req *proto.VersionRequest) (*proto.VersionResponse, error) {
	resp, err := c.rpc.Version(ctx, req)
	return resp, fromStatus(err)
}

// Task is one task in an executor: the task of an executor of its own, or
// one of the tasks of the node's shared executor, named by its ID in every
// request.
type Task struct {
	c      *Client
	id     string
	shared bool
}

// Task is the task id in this executor; shared says the executor is the
// node's shared executor (see LaunchConfig.SharedLog).
func (c *Client) Task(id string, shared bool) *Task { return &Task{c: c, id: id, shared: shared} }

// Client is the executor the task runs in.
func (t *Task) Client() *Client { return t.c }

// Shared reports whether the task runs in the node's shared executor.
func (t *Task) Shared() bool { return t.shared }

// End ends the task once its exit has been collected, or to kill it: an
// executor of its own is ended (Kill); the shared executor releases the
// task, stopping its guest first if it still runs, and runs on for the
// others.
func (t *Task) End() {
	if !t.shared {
		t.c.Kill()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), killGrace+releaseGrace)
	defer cancel()
	_, _ = t.c.rpc.Release(ctx, &proto.ReleaseRequest{TaskId: t.id})
}

// releaseGrace is how long the shared executor may take to release a
// task whose guest still runs (its releaseWait), beyond killGrace.
const releaseGrace = 5 * time.Second

// Start starts the guest. Its error is an *Error of the failure's class,
// or wraps ErrExecutorLost.
func (t *Task) Start(ctx context.Context, req *proto.StartRequest) (*proto.StartResponse, error) {
	req.TaskId = t.id
	resp, err := t.c.rpc.Start(ctx, req)
	return resp, fromStatus(err)
}

// Wait blocks until the guest exits, the executor goes away, or ctx ends.
func (t *Task) Wait(ctx context.Context) (*proto.ExitStatus, error) {
	resp, err := t.c.rpc.Wait(ctx, &proto.WaitRequest{TaskId: t.id})
	if err != nil {
		return nil, fromStatus(err)
	}
	return resp.Status, nil
}

// Stop asks the guest to stop and reports whether it exited within timeout.
func (t *Task) Stop(ctx context.Context, signal syscall.Signal, timeout time.Duration) (bool, error) {
	resp, err := t.c.rpc.Stop(ctx, &proto.StopRequest{Signal: int32(signal), TimeoutNanos: timeout.Nanoseconds(), TaskId: t.id})
	if err != nil {
		return false, fromStatus(err)
	}
	return resp.Exited, nil
}

// Signal delivers sig to the guest.
func (t *Task) Signal(ctx context.Context, sig syscall.Signal) error {
	_, err := t.c.rpc.Signal(ctx, &proto.SignalRequest{Signal: int32(sig), TaskId: t.id})
	return fromStatus(err)
}

// Stats streams resource usage every interval until ctx ends or the guest
// exits. The goroutine that feeds the channel belongs to ctx: it ends, and
// closes the channel, when ctx ends or the stream does.
func (t *Task) Stats(ctx context.Context, interval time.Duration) (<-chan *proto.StatsResponse, error) {
	stream, err := t.c.rpc.Stats(ctx, &proto.StatsRequest{IntervalNanos: interval.Nanoseconds(), TaskId: t.id})
	if err != nil {
		return nil, fromStatus(err)
	}
	ch := make(chan *proto.StatsResponse)
	go func() {
		defer close(ch)
		for {
			s, err := stream.Recv()
			if err != nil {
				return
			}
			select {
			case ch <- s:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// Notices streams what the executor asks the driver to report as the
// task's events, until ctx ends, the task is released or the executor
// goes away; the channel is closed then.
func (t *Task) Notices(ctx context.Context) (<-chan *proto.Notice, error) {
	stream, err := t.c.rpc.Notices(ctx, &proto.NoticesRequest{TaskId: t.id})
	if err != nil {
		return nil, fromStatus(err)
	}
	ch := make(chan *proto.Notice)
	go func() {
		defer close(ch)
		for {
			n, err := stream.Recv()
			if err != nil {
				return
			}
			select {
			case ch <- n:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

// Exec runs the command module at module (a path in the guest's view) in
// the task's sandbox, copying stdin to it and its output to stdout and
// stderr, and returns how it exited. Exec closes stdin when the module has
// exited, which ends the goroutine that copies it; it returns after that
// goroutine.
func (t *Task) Exec(ctx context.Context, module string, args []string, stdin io.ReadCloser, stdout, stderr io.Writer) (*proto.ExitStatus, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := t.c.rpc.Exec(ctx)
	if err != nil {
		return nil, fromStatus(err)
	}
	// A Send that fails with io.EOF means the executor ended the stream
	// (it refused the module, say): Recv below returns why.
	if err := stream.Send(&proto.ExecRequest{Module: module, Args: args, TaskId: t.id}); err != nil && !errors.Is(err, io.EOF) {
		return nil, fromStatus(err)
	}
	if stdin == nil {
		if err := stream.Send(&proto.ExecRequest{StdinClosed: true}); err != nil && !errors.Is(err, io.EOF) {
			return nil, fromStatus(err)
		}
	} else {
		pumped := make(chan struct{})
		defer func() {
			cancel()
			_ = stdin.Close()
			<-pumped
		}()
		go func() {
			defer close(pumped)
			buf := make([]byte, 32<<10)
			for {
				n, err := stdin.Read(buf)
				if n > 0 && stream.Send(&proto.ExecRequest{Stdin: bytes.Clone(buf[:n])}) != nil {
					return
				}
				if err != nil {
					_ = stream.Send(&proto.ExecRequest{StdinClosed: true})
					return
				}
			}
		}()
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return nil, fromStatus(err)
		}
		if len(resp.Stdout) > 0 {
			if _, err := stdout.Write(resp.Stdout); err != nil {
				return nil, err
			}
		}
		if len(resp.Stderr) > 0 {
			if _, err := stderr.Write(resp.Stderr); err != nil {
				return nil, err
			}
		}
		if resp.Exit != nil {
			return resp.Exit, nil
		}
	}
}

// Attach holds the shared executor for this driver until ctx ends or the
// executor goes away (see LaunchConfig.SharedLog): a driver that reattached
// to it calls it, on a goroutine of its own.
func (c *Client) Attach(ctx context.Context) error {
	stream, err := c.rpc.Attach(ctx, &proto.AttachRequest{})
	if err != nil {
		return fromStatus(err)
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fromStatus(err)
		}
	}
}

// Close lets go of a reattached executor without ending it (an executor
// this driver launched is let go of only by Kill).
func (c *Client) Close() {
	if c.conn != nil {
		_ = c.conn.Close()
	}
}

// removeSocket removes the Unix socket at addr that an executor served on,
// once it is gone. go-plugin removes it as the executor exits, which an
// executor that has become its task's user cannot: the socket is root's,
// in the sticky temporary directory. Left there, each task would leave
// one behind.
func removeSocket(addr net.Addr) {
	if addr == nil || addr.Network() != "unix" {
		return
	}
	if fi, err := os.Lstat(addr.String()); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(addr.String())
	}
}

// Exited reports whether the executor process has exited.
func (c *Client) Exited() bool {
	if c.plugin != nil {
		return c.plugin.Exited()
	}
	return ProcessGone(c.Pid)
}

// killGrace is how long Kill waits for an executor asked to exit before it
// sends SIGKILL.
const killGrace = 2 * time.Second

// Kill ends the executor: gracefully if it answers, by SIGKILL otherwise.
// It returns once the process is gone. It may be called more than once and
// concurrently (the task's end and DestroyTask both call it): later calls
// wait for the first.
func (c *Client) Kill() { c.killOnce.Do(c.kill) }

func (c *Client) kill() {
	c.Claimed() // nothing left to watch
	rc := c.ReattachConfig()
	defer func() {
		if rc != nil && ProcessGone(c.Pid) {
			removeSocket(rc.Addr)
		}
	}()
	if c.plugin != nil {
		// go-plugin asks the executor to shut down first, with no
		// deadline: an executor that does not answer (frozen, stopped)
		// would hold this for ever. Killed, its connection ends, and so
		// does the call.
		done := make(chan struct{})
		go func() { c.plugin.Kill(); close(done) }()
		select {
		case <-done:
		case <-time.After(killGrace):
			_ = syscall.Kill(c.Pid, syscall.SIGKILL)
			select {
			case <-done:
			case <-time.After(killGrace):
			}
		}
		return
	}
	// go-plugin's controller service stops the executor's gRPC server, after
	// which the executor exits.
	ctx, cancel := context.WithTimeout(context.Background(), killGrace)
	defer cancel()
	_ = c.conn.Invoke(ctx, "/plugin.GRPCController/Shutdown", &emptypb.Empty{}, &emptypb.Empty{})
	_ = c.conn.Close()
	for !ProcessGone(c.Pid) {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(c.Pid, syscall.SIGKILL)
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}
