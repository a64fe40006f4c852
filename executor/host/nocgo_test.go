// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !cgo

package host

// cgoLinked: see cgo_test.go.
const cgoLinked = false
