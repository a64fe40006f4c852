// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build e2e

package e2e

import (
	"os"
	"testing"

	nomadapi "github.com/hashicorp/nomad/api"
)

// TestMain removes the plugin binary that the run built (pluginBinaryDir)
// once every test is done.
func TestMain(m *testing.M) {
	// The API client reads logs and files from the client agent through
	// a client of the node made per call; with a timeout (the default,
	// one second) each gets a transport of its own, whose idle connection
	// stays open for 90 s: reading the logs of 200 tasks reached the
	// agent's 100 connections per client and its 429s. Without one, every
	// node client shares the API client's transport.
	nomadapi.ClientConnTimeout = -1
	code := m.Run()
	if pluginDir != "" {
		_ = os.RemoveAll(pluginDir)
	}
	os.Exit(code)
}
