// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers/proto"
	"github.com/shoenig/test/must"
	"google.golang.org/grpc"
)

// TestCapabilitiesCarryDisableLogCollection: Nomad's plugin server leaves
// DisableLogCollection out of its Capabilities answer; the interceptor puts
// the driver's in, and touches no other method.
func TestCapabilitiesCarryDisableLogCollection(t *testing.T) {
	for _, collector := range []string{LogsByExecutor, LogsByNomad} {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		d := New(ctx, hclog.NewNullLogger())
		d.config = Config{Logs: LogsConfig{Collector: collector}}
		nomads := func(context.Context, any) (any, error) {
			return &proto.CapabilitiesResponse{Capabilities: &proto.DriverCapabilities{SendSignals: true}}, nil
		}
		resp, err := d.capabilitiesInterceptor(context.Background(), &proto.CapabilitiesRequest{}, &grpc.UnaryServerInfo{FullMethod: capabilitiesMethod}, nomads)
		must.NoError(t, err)
		caps := resp.(*proto.CapabilitiesResponse).Capabilities
		must.Eq(t, collector == LogsByExecutor, caps.DisableLogCollection)
		must.True(t, caps.SendSignals)

		other, err := d.capabilitiesInterceptor(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/hashicorp.nomad.plugins.drivers.proto.Driver/InspectTask"},
			func(context.Context, any) (any, error) { return &proto.CapabilitiesResponse{}, nil })
		must.NoError(t, err)
		must.Nil(t, other.(*proto.CapabilitiesResponse).Capabilities)
	}
}
