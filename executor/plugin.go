// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// Subcommand is the hidden first argument that makes the plugin binary run as
// an executor instead of as the driver plugin.
const Subcommand = "wasm-executor"

// ProtocolVersion is the executor protocol spoken by this build. A driver
// refuses to reattach to an executor speaking another version.
const ProtocolVersion = 1

// pluginName is the go-plugin name under which the executor is served.
const pluginName = "wasm-executor"

// Handshake is the go-plugin handshake between the driver and its executors.
// It is our own, distinct from Nomad's plugin handshake, so an executor
// can only be started by this driver and never mistaken for a Nomad plugin.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "NOMAD_DRIVER_WASM_EXECUTOR",
	MagicCookieValue: "3f6c0a8e5b1d4c27a9e2f07b6d58c1e4",
}

// grpcPlugin adapts the executor service to go-plugin. On the server side it
// carries the service implementation; on the client side it is empty.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	server *server
}

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	p.server.grpcServer = s
	proto.RegisterExecutorServer(s, p.server)
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return proto.NewExecutorClient(c), nil
}
