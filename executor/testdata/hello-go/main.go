// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Command hello-go is the Go (GOOS=wasip1) test guest.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Println("hello from go wasm")
	if len(os.Args) > 1 && os.Args[1] == "env" {
		for _, e := range os.Environ() {
			fmt.Println(e)
		}
	}
}
