// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package host

import "github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"

// shutdownGuestSockets: a guest blocked on a socket wakes when its
// executor ends.
func shutdownGuestSockets([]*proto.Listener) {}
