// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"context"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/drivers/proto"
	"google.golang.org/grpc"
)

// Serve serves the driver to the Nomad client as Nomad's plugins.Serve
// does, with one difference: its Capabilities answer carries DisableLogCollection.
//
// Nomad's client reads that capability from a plugin's answer, and skips
// the task's logmon when it is set (client/allocrunner/taskrunner's logmon
// hook), but Nomad's plugin server (plugins/drivers/server.go, v1.11.3)
// does not copy it into the answer: for an external driver it always
// arrives false, and Nomad starts a logmon per task, 13.5 MB each, beside
// the executor that writes the logs itself. A gRPC interceptor sets it
// from the driver's own Capabilities.
func Serve() {
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, JSONFormat: true})
	d := New(context.Background(), logger)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: base.Handshake,
		Plugins: map[string]plugin.Plugin{
			base.PluginTypeBase:   &base.PluginBase{Impl: d},
			base.PluginTypeDriver: drivers.NewDriverPlugin(d, logger),
		},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return plugin.DefaultGRPCServer(append(opts, grpc.ChainUnaryInterceptor(d.capabilitiesInterceptor)))
		},
		Logger: logger,
	})
}

// capabilitiesMethod is the gRPC method of a driver's Capabilities.
const capabilitiesMethod = "/hashicorp.nomad.plugins.drivers.proto.Driver/Capabilities"

// capabilitiesInterceptor completes Nomad's Capabilities answer with
// DisableLogCollection (see Serve).
func (d *Driver) capabilitiesInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err != nil || info.FullMethod != capabilitiesMethod {
		return resp, err
	}
	if r, ok := resp.(*proto.CapabilitiesResponse); ok && r.Capabilities != nil {
		caps, err := d.Capabilities()
		if err != nil {
			return nil, err
		}
		r.Capabilities.DisableLogCollection = caps.DisableLogCollection
	}
	return resp, nil
}
