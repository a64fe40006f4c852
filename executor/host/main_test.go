// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"os"
	"testing"
)

// TestMain lets this package's test binary serve as the benchmarks' echo
// server, a process of its own (echoEnv), and as a client of the
// executor's protocol (dialEnv).
func TestMain(m *testing.M) {
	if os.Getenv(echoEnv) == "1" {
		serveEcho()
		return
	}
	if socket := os.Getenv(dialEnv); socket != "" {
		dialVersion(socket)
		return
	}
	os.Exit(m.Run())
}
