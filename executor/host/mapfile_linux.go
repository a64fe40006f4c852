// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import "syscall"

// mapPopulate maps a file's pages at once rather than one fault at a time.
const mapPopulate = syscall.MAP_POPULATE
