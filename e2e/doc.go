// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package e2e tests the plugin against real Consul and Nomad agents on this
// machine (build tag e2e; run with make e2e). The agents come from
// e2e/agents.sh; every test's cluster is torn down completely, processes,
// mounts and directories, whether the test passed or not.
package e2e
