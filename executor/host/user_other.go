// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package host

import (
	"errors"
	"net"
	"os"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

var errNoDrop = errors.New("running a task as another user is supported on Linux only")

// becomeUser is Linux-only.
func becomeUser(*proto.RunAs) error { return errNoDrop }

// asUserOnThread is Linux-only.
func asUserOnThread[T any](_ *proto.RunAs, _ string, _ bool, _ func() (T, error), _ func(T), _ *executor.Trace) (T, error) {
	var zero T
	return zero, errDrop{errNoDrop}
}

// rootOf is Linux-only: only there does an executor give up the
// privileges that reach a task's directories by path.
func rootOf(*os.File) (*os.Root, error) { return nil, errNoDrop }

// peerMayHandOver is Linux-only, as handoffs are.
func peerMayHandOver(*net.UnixConn) error { return errNoDrop }

// takeGroups is Linux-only, as becoming a task's user is.
func takeGroups([]uint32) error { return nil }

// setGroups is Linux-only, as becoming a task's user is.
func setGroups([]uint32) error { return nil }
