// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// Client is the driver's connection to one task's executor.
type Client struct {
	rpc    proto.ExecutorClient
	plugin *plugin.Client
	// Pid is the executor's process ID.
	Pid int
}

// LaunchConfig says how to start an executor.
type LaunchConfig struct {
	// Binary is the executable to run as the executor; empty means this
	// process's own executable, which is how the plugin runs.
	Binary string
	// Logger receives what the executor logs before it is given a task.
	Logger hclog.Logger
}

// Launch starts an executor process in a session of its own, so that
// signals aimed at the Nomad client or the driver do not reach it and it
// outlives both.
func Launch(cfg LaunchConfig) (*Client, error) {
	bin := cfg.Binary
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("find the plugin binary: %w", err)
		}
	}
	cmd := exec.Command(bin, Subcommand)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return connect(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          map[string]plugin.Plugin{pluginName: &grpcPlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           cfg.Logger,
	})
}

// Reattach connects to a running executor, for example after the driver
// restarted, and checks that it speaks this build's protocol.
func Reattach(rc *plugin.ReattachConfig, logger hclog.Logger) (*Client, error) {
	c, err := connect(&plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          map[string]plugin.Plugin{pluginName: &grpcPlugin{}},
		Reattach:         rc,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           logger,
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := c.rpc.Version(ctx, &proto.VersionRequest{})
	if err != nil {
		c.plugin.Kill()
		return nil, fmt.Errorf("executor did not answer: %w", err)
	}
	if v.Protocol != ProtocolVersion {
		return nil, fmt.Errorf("executor %d speaks protocol %d, this driver speaks %d", v.Pid, v.Protocol, ProtocolVersion)
	}
	return c, nil
}

func connect(cfg *plugin.ClientConfig) (*Client, error) {
	pc := plugin.NewClient(cfg)
	rpcClient, err := pc.Client()
	if err != nil {
		pc.Kill()
		return nil, fmt.Errorf("connect to executor: %w", err)
	}
	raw, err := rpcClient.Dispense(pluginName)
	if err != nil {
		pc.Kill()
		return nil, fmt.Errorf("connect to executor: %w", err)
	}
	c := &Client{rpc: raw.(proto.ExecutorClient), plugin: pc}
	if rc := pc.ReattachConfig(); rc != nil {
		c.Pid = rc.Pid
	}
	return c, nil
}

// ReattachConfig is what Reattach needs to find this executor again.
func (c *Client) ReattachConfig() *plugin.ReattachConfig { return c.plugin.ReattachConfig() }

// Start starts the guest. An error caused by the module or the task's
// configuration comes back as its plain message, written for the job's
// author.
func (c *Client) Start(ctx context.Context, req *proto.StartRequest) (*proto.StartResponse, error) {
	resp, err := c.rpc.Start(ctx, req)
	return resp, plainError(err)
}

// Wait blocks until the guest exits, the executor goes away, or ctx ends.
func (c *Client) Wait(ctx context.Context) (*proto.ExitStatus, error) {
	resp, err := c.rpc.Wait(ctx, &proto.WaitRequest{})
	if err != nil {
		return nil, plainError(err)
	}
	return resp.Status, nil
}

// Stop asks the guest to stop and reports whether it exited within timeout.
func (c *Client) Stop(ctx context.Context, signal syscall.Signal, timeout time.Duration) (bool, error) {
	resp, err := c.rpc.Stop(ctx, &proto.StopRequest{Signal: int32(signal), TimeoutNanos: timeout.Nanoseconds()})
	if err != nil {
		return false, plainError(err)
	}
	return resp.Exited, nil
}

// Signal delivers sig to the guest.
func (c *Client) Signal(ctx context.Context, sig syscall.Signal) error {
	_, err := c.rpc.Signal(ctx, &proto.SignalRequest{Signal: int32(sig)})
	return plainError(err)
}

// Stats streams resource usage every interval until ctx ends or the guest
// exits; the channel is closed then.
func (c *Client) Stats(ctx context.Context, interval time.Duration) (<-chan *proto.StatsResponse, error) {
	stream, err := c.rpc.Stats(ctx, &proto.StatsRequest{IntervalNanos: interval.Nanoseconds()})
	if err != nil {
		return nil, plainError(err)
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

// Exec runs the command module at module (a path in the guest's view) in
// the task's sandbox, copying stdin to it and its output to stdout and
// stderr, and returns how it exited.
func (c *Client) Exec(ctx context.Context, module string, args []string, stdin io.Reader, stdout, stderr io.Writer) (*proto.ExitStatus, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.Exec(ctx)
	if err != nil {
		return nil, plainError(err)
	}
	if err := stream.Send(&proto.ExecRequest{Module: module, Args: args}); err != nil {
		return nil, plainError(err)
	}
	if stdin != nil {
		go func() {
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
	} else if err := stream.Send(&proto.ExecRequest{StdinClosed: true}); err != nil {
		return nil, plainError(err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return nil, plainError(err)
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

// Exited reports whether the executor process has exited (only known for
// an executor this Client launched or reattached to and then lost).
func (c *Client) Exited() bool { return c.plugin.Exited() }

// Kill ends the executor: gracefully if it answers, by SIGKILL otherwise.
func (c *Client) Kill() { c.plugin.Kill() }

// RejectedError is the executor refusing a module or request for a reason
// the job's author can fix; its message says what and how.
type RejectedError struct {
	Msg string
	// NotFound is set when the module path names nothing in the task's
	// view: it does not exist there, or it leads outside it.
	NotFound bool
}

func (e *RejectedError) Error() string { return e.Msg }

// plainError turns a gRPC status into an error carrying just its message (a
// *RejectedError for what the caller sent), or io.ErrUnexpectedEOF when the
// executor went away.
func plainError(err error) error {
	if err == nil {
		return nil
	}
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch {
	case s.Code() == codes.InvalidArgument:
		return &RejectedError{Msg: s.Message()}
	case s.Code() == codes.NotFound:
		return &RejectedError{Msg: s.Message(), NotFound: true}
	case s.Code() == codes.Unavailable, s.Code() == codes.Canceled && errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: %s", io.ErrUnexpectedEOF, s.Message())
	}
	return errors.New(s.Message())
}
