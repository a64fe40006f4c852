// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// Subcommand is the hidden first argument that makes the plugin binary run as
// an executor instead of as the driver plugin.
const Subcommand = "wasm-executor"

// WatchFDFlag is the executor's argument naming the file descriptor of its
// launcher's watch pipe: the read end of a pipe whose write end only the
// driver that launched it holds. It reads end of file when that driver is
// gone (kill -9 included), and an executor that no task has claimed exits
// then.
const WatchFDFlag = "-watch-fd"

// The executor's arguments that carry a Warm (see LaunchConfig).
const (
	WarmCacheDirFlag = "-warm-cache-dir"
	WarmEngineFlag   = "-warm-engine"
	WarmModulesFlag  = "-warm-modules"
	WarmDigestsFlag  = "-warm-digests"
	WarmGroupsFlag   = "-warm-groups"
)

// SharedFlag makes the executor the node's shared executor, which runs many
// tasks (see LaunchConfig.Shared); SharedLogFlag names the file it logs to.
const (
	SharedFlag    = "-shared"
	SharedLogFlag = "-shared-log"
)

// RunAsFlag makes a shared executor become a user when it starts, before
// it runs any task (see LaunchConfig.RunAs); its value is the RunAs
// message in protobuf's JSON form.
const RunAsFlag = "-run-as"

// RunAsArg is u as RunAsFlag's value.
func RunAsArg(u *proto.RunAs) string {
	b, _ := protojson.Marshal(u) // a message of scalars: nothing to fail
	return string(b)
}

// ParseRunAs reads RunAsFlag's value.
func ParseRunAs(s string) (*proto.RunAs, error) {
	u := &proto.RunAs{}
	if err := protojson.Unmarshal([]byte(s), u); err != nil {
		return nil, fmt.Errorf("%s=%q: not a user: %w", RunAsFlag, s, err)
	}
	if u.Name == "" {
		return nil, fmt.Errorf("%s=%q: not a user: it has no name", RunAsFlag, s)
	}
	return u, nil
}

// RecentWindow is how recently a module must have started on a node for a
// spare executor to prepare it: a start within it is a repeated start
// (dispatch, periodic, scale-out, restarts).
const RecentWindow = 10 * time.Minute

// ProtocolVersion is the executor protocol spoken by this build. A driver
// refuses to reattach to an executor speaking another version.
const ProtocolVersion = 1

// PluginName is the go-plugin name under which the executor is served.
const PluginName = "wasm-executor"

// Handshake is the go-plugin handshake between the driver and its executors.
// It is our own, distinct from Nomad's plugin handshake, so an executor
// can only be started by this driver and never mistaken for a Nomad plugin.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "NOMAD_DRIVER_WASM_EXECUTOR",
	MagicCookieValue: "3f6c0a8e5b1d4c27a9e2f07b6d58c1e4",
}

// ServerPlugin serves an implementation of the executor protocol through
// go-plugin. The host side of the executor uses it; OnServe, when set, is
// given the gRPC server once it exists, so that the host can stop it.
type ServerPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl    proto.ExecutorServer
	OnServe func(*grpc.Server)
}

func (p *ServerPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	proto.RegisterExecutorServer(s, p.Impl)
	if p.OnServe != nil {
		p.OnServe(s)
	}
	return nil
}

func (p *ServerPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, errNotAClient
}

// clientPlugin is the driver's side of the go-plugin adapter.
type clientPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (clientPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return errNotAServer }

func (clientPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return proto.NewExecutorClient(c), nil
}

var (
	errNotAClient = errors.New("the executor's server plugin cannot be dispensed as a client")
	errNotAServer = errors.New("the executor's client plugin cannot serve")
)

// Version is the version of this build of the plugin binary (set by the
// build's -ldflags); the executor is the same binary and reports the same.
var Version = "0.1.0-dev"
