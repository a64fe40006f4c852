// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package host

// joinEachThread is false but on Linux, the only system with cgroups.
func joinEachThread() bool { return false }

func joinByThread(string) (bool, error) { return false, nil }
