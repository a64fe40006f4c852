// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"os"
	"testing"
)

// TestMain lets this package's test binary serve as the benchmarks' echo
// server, a process of its own (echoEnv).
func TestMain(m *testing.M) {
	if os.Getenv(echoEnv) == "1" {
		serveEcho()
		return
	}
	os.Exit(m.Run())
}
