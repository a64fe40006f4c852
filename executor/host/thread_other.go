// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package host

import "time"

// threadID is Linux-only; elsewhere a guest's thread is not told apart.
func threadID() int { return 0 }

// threadCPU is Linux-only; elsewhere a guest's own CPU time reads as zero.
func threadCPU(int) time.Duration { return 0 }

// forbidNewPrivileges is Linux-only (no_new_privs).
func forbidNewPrivileges() (everyThread bool, err error) { return true, nil }
