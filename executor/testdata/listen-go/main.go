// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Command listen-go is the Go (GOOS=wasip1) test guest of the granted
// listeners: it serves HTTP on the listening socket the host preopened and
// named in WASM_LISTENER_HTTP, answering "hello from go listener PATH".
// /quit answers, then the server shuts down (closing the listener and
// waiting for the /quit response to be complete) and the guest exits 0.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"syscall"
)

func main() {
	s := os.Getenv("WASM_LISTENER_HTTP")
	if s == "" {
		fmt.Fprintln(os.Stderr, "listen-go: WASM_LISTENER_HTTP is not set (no listener granted)")
		os.Exit(2)
	}
	fd, err := strconv.Atoi(s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen-go: WASM_LISTENER_HTTP:", err)
		os.Exit(2)
	}
	// The Go runtime polls its descriptors: the listener must not block.
	if err := syscall.SetNonblock(fd, true); err != nil {
		fmt.Fprintln(os.Stderr, "listen-go: set nonblock:", err)
		os.Exit(1)
	}
	l, err := net.FileListener(os.NewFile(uintptr(fd), "listener"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen-go: file listener:", err)
		os.Exit(1)
	}

	srv := &http.Server{}
	done := make(chan struct{})
	srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := "hello from go listener " + r.URL.Path + "\n"
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.URL.Path == "/quit" {
			w.Header().Set("Connection", "close")
		}
		fmt.Fprint(w, body)
		if r.URL.Path == "/quit" {
			// Shutdown closes the listener (Serve returns at once) and
			// returns when this connection is done, its response sent.
			go func() {
				srv.Shutdown(context.Background())
				close(done)
			}()
		}
	})
	err = srv.Serve(l)
	if err == http.ErrServerClosed {
		<-done
		os.Exit(0)
	}
	fmt.Fprintln(os.Stderr, "listen-go: serve:", err)
	os.Exit(1)
}
