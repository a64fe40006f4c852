// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build cgo

package host

// cgoLinked: this test binary links cgo (it imports net, and -race needs
// it), as the executor built by executor/embedded/build.sh does not.
const cgoLinked = true
