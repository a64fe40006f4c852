// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Command sidecar is the program of the examples' Docker image (built FROM
// scratch, so it is its own shell): "write FILE TEXT" writes a file,
// "heartbeat" prints a line every second until it is stopped (SIGTERM).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
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
		heartbeat()
		return
	}
	fmt.Fprintln(os.Stderr, "usage: sidecar write FILE TEXT | sidecar heartbeat")
	os.Exit(2)
}

// heartbeat prints a line every second until SIGTERM or SIGINT. As PID 1
// of its container it must handle SIGTERM itself: a stop is the normal end
// of a sidecar, so it returns and the program exits 0.
func heartbeat() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i := 0; ; i++ {
		fmt.Println("sidecar heartbeat", i)
		select {
		case <-stop:
			fmt.Println("sidecar stopped")
			return
		case <-tick.C:
		}
	}
}
