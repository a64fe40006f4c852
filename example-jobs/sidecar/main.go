// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Command sidecar is the program of the examples' Docker image (built FROM
// scratch, so it is its own shell): "write FILE TEXT" writes a file,
// "heartbeat" prints a line every second until it is stopped.
package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	if len(os.Args) >= 4 && os.Args[1] == "write" {
		if err := os.WriteFile(os.Args[2], []byte(os.Args[3]+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("wrote", os.Args[2])
		return
	}
	if len(os.Args) >= 2 && os.Args[1] == "heartbeat" {
		for i := 0; ; i++ {
			fmt.Println("sidecar heartbeat", i)
			time.Sleep(time.Second)
		}
	}
	fmt.Fprintln(os.Stderr, "usage: sidecar write FILE TEXT | sidecar heartbeat")
	os.Exit(2)
}
