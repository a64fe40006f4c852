// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// dialEnv makes this test binary a client of the executor's protocol
// (TestMain): it asks the executor at the Unix socket it names for its
// Version, and exits 0 if it answered, dialRefused if not.
const dialEnv = "WASM_HOST_TEST_DIAL"

const dialRefused = 3

// dialVersion is the client's process (see dialEnv).
func dialVersion(socket string) {
	os.Exit(askVersion(socket))
}

// askVersion is dialVersion's exit code.
func askVersion(socket string) int {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := proto.NewExecutorClient(conn).Version(ctx, &proto.VersionRequest{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return dialRefused
	}
	return 0
}
