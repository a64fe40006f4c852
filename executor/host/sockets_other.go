// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package host

import (
	"time"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// guestSockets are one instance's sockets, which only Linux lets the
// executor find (see sockets_linux.go): a guest blocked on a socket wakes
// when its executor ends, and a poll of its sockets waits out its timeout.
type guestSockets struct{}

func openSockets() map[uint64]bool { return nil }

func recordListeners(map[uint64]bool, []*proto.Listener) *guestSockets { return &guestSockets{} }

func (*guestSockets) release() {}

func (*guestSockets) shutdown() {}

// poll waits out timeout and reports the sockets ready.
func (*guestSockets) poll(_ bool, timeout time.Duration) bool {
	time.Sleep(timeout)
	return true
}
