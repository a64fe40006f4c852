// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import "errors"

// TrapExitCode is the exit code of a guest that trapped (hit unreachable,
// divided by zero, accessed memory out of bounds, ...). It matches what a
// native program that calls abort() reports on Unix: 128 + SIGABRT.
const TrapExitCode = 134

// PageSize is the size of one WebAssembly linear-memory page.
const PageSize = 65536

// Engine settings, as written in the plugin config, sent in a StartRequest
// and reported in attributes. EngineAuto is resolved by the executor.
const (
	EngineAuto        = "auto"
	EngineCompiler    = "compiler"
	EngineInterpreter = "interpreter"
)

// ErrSignalUnsupported explains why only SIGINT and SIGTERM reach a guest.
var ErrSignalUnsupported = errors.New("a WebAssembly guest has no signal handlers (WASI preview 1 has no signals); SIGINT and SIGTERM stop it gracefully, other signals are not supported")
