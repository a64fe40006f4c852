// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package host

// mapPopulate: only Linux can map a file's pages at once.
const mapPopulate = 0
