// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// Version is the version of this build of the plugin binary; the executor
// is the same binary and reports the same version.
var Version = "0.1.0-dev"

// lingerAfterExit is how long an executor whose guest has exited waits for
// a driver to collect the exit status before it exits. The status is also
// in ExitStatusFile, so a driver that comes later loses nothing.
const lingerAfterExit = 30 * time.Second

// idleTimeout is how long an executor that was never given a guest waits
// before it exits: a spare whose driver went away must not live forever.
const idleTimeout = 10 * time.Minute

// Serve runs the executor: the plugin binary calls it when its first
// argument is Subcommand. It returns when the executor is done.
//
// An executor starts without a task: the driver keeps one started ahead of
// the next task, so that a task's start does not wait for a process to
// start. Until Start it logs to stderr, which go-plugin forwards to the
// driver's log; from Start on, to the task's executor log file.
func Serve() {
	// The driver may die while the executor runs on; a write to the pipes
	// it left behind must fail, not kill the executor and its guest.
	signal.Ignore(syscall.SIGPIPE)

	out := &logOutput{w: os.Stderr}
	logger := hclog.New(&hclog.LoggerOptions{Name: "wasm-executor", Level: hclog.Info, JSONFormat: true, Output: out})
	s := &server{logger: logger, logOutput: out, claimed: make(chan struct{})}
	go s.exitIfIdle(idleTimeout)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         map[string]plugin.Plugin{pluginName: &grpcPlugin{server: s}},
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          logger,
	})
	logger.Debug("executor exiting")
	out.close()
}

// logOutput is the executor log's destination, switched once from stderr
// to the task's log file.
type logOutput struct {
	mu   sync.Mutex
	w    io.Writer
	file *os.File
}

func (o *logOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.w.Write(p)
}

func (o *logOutput) toFile(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.w, o.file = f, f
	return nil
}

func (o *logOutput) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file != nil {
		_ = o.file.Close()
	}
}

// server is the executor's side of the protocol. It runs one guest.
type server struct {
	proto.UnimplementedExecutorServer

	logger     hclog.Logger
	logOutput  *logOutput
	grpcServer *grpc.Server
	claimed    chan struct{} // closed by Start

	mu    sync.Mutex
	guest *guest
	// req is the task's start request, the template of exec'd modules.
	req *proto.StartRequest
}

// status is the gRPC status that carries a start error to the driver:
// NotFound for a module path that names nothing in the task's view,
// InvalidArgument for anything else the job's author can fix.
func (e *startError) status() error {
	if e.notFound {
		return status.Error(codes.NotFound, e.msg)
	}
	return status.Error(codes.InvalidArgument, e.msg)
}

func (s *server) Version(context.Context, *proto.VersionRequest) (*proto.VersionResponse, error) {
	return &proto.VersionResponse{Version: Version, Protocol: ProtocolVersion, Pid: int32(os.Getpid())}, nil
}

func (s *server) Start(_ context.Context, req *proto.StartRequest) (*proto.StartResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.claimed:
		return nil, status.Error(codes.FailedPrecondition, "the executor was given a task before: it runs one guest in its life")
	default:
		close(s.claimed)
	}
	if req.LogFile != "" {
		if err := s.logOutput.toFile(req.LogFile); err != nil {
			s.logger.Warn("cannot open the executor log; logging to stderr", "path", req.LogFile, "error", err)
		}
	}
	if req.LogLevel != "" {
		s.logger.SetLevel(hclog.LevelFromString(req.LogLevel))
	}
	streams, err := taskStdio(req)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	g, resp, err := startGuest(s.logger, ModuleCache{Dir: req.CacheDir}, req, streams)
	var userErr *startError
	switch {
	case errors.As(err, &userErr):
		return nil, userErr.status()
	case err != nil:
		return nil, status.Error(codes.Internal, err.Error())
	}
	// What init and compilation allocated is garbage now, and most of the
	// binary that start-up mapped will not be used again: hand both back so
	// that an idle task holds little more than what its guest uses.
	go func() {
		debug.FreeOSMemory()
		trimBinaryPages()
	}()
	s.logger.Info("guest started", "module", req.Module, "sha256", resp.ModuleSha256, "cache_hit", resp.CacheHit, "load", time.Duration(resp.LoadNanos))
	s.guest, s.req = g, req
	go s.exitAfter(g)
	return resp, nil
}

// exitAfter stops serving lingerAfterExit after the guest has exited. A
// driver that collects the status kills the executor sooner; this bounds
// how long an executor outlives a guest whose driver never came back.
// (GracefulStop would wait for go-plugin's stdio stream, which a connected
// driver holds open; the status is on disk, so nothing is lost by Stop.)
func (s *server) exitAfter(g *guest) {
	<-g.done
	t := time.NewTimer(lingerAfterExit)
	defer t.Stop()
	<-t.C
	if s.grpcServer != nil {
		s.grpcServer.Stop()
	}
}

// exitIfIdle stops serving if no task arrives within idle.
func (s *server) exitIfIdle(idle time.Duration) {
	t := time.NewTimer(idle)
	defer t.Stop()
	select {
	case <-s.claimed:
	case <-t.C:
		s.logger.Info("no task arrived; exiting", "idle", idle)
		if s.grpcServer != nil {
			s.grpcServer.Stop()
		}
	}
}

func (s *server) current() (*guest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.guest == nil {
		return nil, status.Error(codes.FailedPrecondition, "no guest has been started")
	}
	return s.guest, nil
}

func (s *server) Wait(ctx context.Context, _ *proto.WaitRequest) (*proto.WaitResponse, error) {
	g, err := s.current()
	if err != nil {
		return nil, err
	}
	select {
	case <-g.done:
		return &proto.WaitResponse{Status: g.status}, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func (s *server) Stop(ctx context.Context, req *proto.StopRequest) (*proto.StopResponse, error) {
	g, err := s.current()
	if err != nil {
		return nil, err
	}
	g.stop(req.Signal)
	t := time.NewTimer(time.Duration(req.TimeoutNanos))
	defer t.Stop()
	select {
	case <-g.done:
		return &proto.StopResponse{Exited: true}, nil
	case <-t.C:
		return &proto.StopResponse{Exited: false}, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func (s *server) Signal(_ context.Context, req *proto.SignalRequest) (*proto.SignalResponse, error) {
	g, err := s.current()
	if err != nil {
		return nil, err
	}
	switch syscall.Signal(req.Signal) {
	case syscall.SIGINT, syscall.SIGTERM:
		g.stop(req.Signal)
		return &proto.SignalResponse{}, nil
	}
	return nil, status.Errorf(codes.InvalidArgument, "signal %d cannot be delivered: %s", req.Signal, ErrSignalUnsupported)
}

// ErrSignalUnsupported explains why only SIGINT and SIGTERM reach a guest.
var ErrSignalUnsupported = errors.New("a WebAssembly guest has no signal handlers (WASI preview 1 has no signals); SIGINT and SIGTERM stop it gracefully, other signals are not supported")

func (s *server) Stats(req *proto.StatsRequest, stream proto.Executor_StatsServer) error {
	g, err := s.current()
	if err != nil {
		return err
	}
	interval := time.Duration(req.IntervalNanos)
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	prev := sampleCPU()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case <-g.done:
			return nil
		case <-t.C:
		}
		cur := sampleCPU()
		user, system, total := cur.percent(prev)
		prev = cur
		err := stream.Send(&proto.StatsResponse{
			TimestampUnixNano: cur.at.UnixNano(),
			Pid:               int32(os.Getpid()),
			RssBytes:          residentBytes(),
			CpuUserPercent:    user,
			CpuSystemPercent:  system,
			CpuPercent:        total,
			CpuUserSeconds:    cur.user.Seconds(),
			CpuSystemSeconds:  cur.system.Seconds(),
			LinearMemoryBytes: g.memBytes.Load(),
		})
		if err != nil {
			return err
		}
	}
}

// Exec runs a command module from the task's view in the task's sandbox:
// the task's mounts, environment, memory cap and engine, in a runtime of
// its own beside the task's guest.
func (s *server) Exec(stream proto.Executor_ExecServer) error {
	s.mu.Lock()
	base := s.req
	s.mu.Unlock()
	if base == nil {
		return status.Error(codes.FailedPrecondition, "no guest has been started")
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	if first.Module == "" {
		return status.Error(codes.InvalidArgument, "name a WebAssembly command module in the task's view to run, for example /local/tool.wasm")
	}
	req := &proto.StartRequest{
		Module:            first.Module,
		Args:              first.Args,
		Env:               base.Env,
		Mounts:            base.Mounts,
		Entrypoint:        "_start",
		MemoryLimitPages:  base.MemoryLimitPages,
		MemoryLimitSource: base.MemoryLimitSource,
		CacheDir:          base.CacheDir,
		Engine:            base.Engine,
	}
	stdin, stdinW := io.Pipe()
	go func() {
		// Feeds the guest's stdin until the caller closes it or goes away;
		// either way the guest then reads end of file.
		for {
			msg, err := stream.Recv()
			if err != nil {
				_ = stdinW.Close()
				return
			}
			if len(msg.Stdin) > 0 {
				if _, err := stdinW.Write(msg.Stdin); err != nil {
					return
				}
			}
			if msg.StdinClosed {
				_ = stdinW.Close()
			}
		}
	}()
	defer stdin.Close()

	out := &execOutput{stream: stream}
	g, _, err := startGuest(s.logger.Named("exec"), ModuleCache{Dir: req.CacheDir}, req,
		stdio{stdin: stdin, stdout: out.writer(false), stderr: out.writer(true)})
	var userErr *startError
	switch {
	case errors.As(err, &userErr):
		return userErr.status()
	case err != nil:
		return status.Error(codes.Internal, err.Error())
	}
	select {
	case <-g.done:
	case <-stream.Context().Done():
		g.stop(int32(syscall.SIGKILL))
		<-g.done
		return stream.Context().Err()
	}
	return out.send(&proto.ExecResponse{Exit: g.status})
}

// execOutput sends an exec'd guest's output; gRPC streams take one sender
// at a time.
type execOutput struct {
	mu     sync.Mutex
	stream proto.Executor_ExecServer
}

func (o *execOutput) send(r *proto.ExecResponse) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stream.Send(r)
}

func (o *execOutput) writer(stderr bool) io.WriteCloser { return execWriter{o, stderr} }

type execWriter struct {
	out    *execOutput
	stderr bool
}

func (w execWriter) Write(p []byte) (int, error) {
	b := bytes.Clone(p)
	r := &proto.ExecResponse{Stdout: b}
	if w.stderr {
		r = &proto.ExecResponse{Stderr: b}
	}
	if err := w.out.send(r); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (execWriter) Close() error { return nil }
