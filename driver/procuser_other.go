// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package driver

import "errors"

// errNoProcessUser: off Linux, a task runs as the client's user only (see
// user.go), so the shared executor's user never differs from the driver's.
var errNoProcessUser = errors.New("a process's user is read on Linux only")

func processUser(int) (uint32, uint32, []uint32, error) { return 0, 0, nil, errNoProcessUser }
