// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package host

import (
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// protocolServer is go-plugin's server: elsewhere than on Linux no
// executor serves as another user than its launcher's.
func protocolServer(uint32, hclog.Logger) func([]grpc.ServerOption) *grpc.Server {
	return plugin.DefaultGRPCServer
}
