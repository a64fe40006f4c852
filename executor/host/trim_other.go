// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package host

// trimBinaryPages is Linux-only; elsewhere the executor keeps what it maps.
func trimBinaryPages() {}
