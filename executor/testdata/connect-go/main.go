// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// connect-go is an outbound TCP client in Go for GOOS=wasip1, through
// github.com/stealthrocket/net's wasip1.Dial (WasmEdge's socket
// extension). Usage: connect-go HOST:PORT MESSAGE. It sends MESSAGE,
// closes its writing side, prints what it receives until the peer closes,
// and exits 0; on a failure it prints it and exits 1.
package main

import (
	"fmt"
	"io"
	"net"
	"os"

	"github.com/stealthrocket/net/wasip1"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: connect-go HOST:PORT MESSAGE")
		os.Exit(1)
	}
	conn, err := wasip1.Dial("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(1)
	}
	fmt.Printf("connected to %s from %s\n", conn.RemoteAddr(), conn.LocalAddr())
	if _, err := io.WriteString(conn, os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "write:", err)
		os.Exit(1)
	}
	if err := conn.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		fmt.Fprintln(os.Stderr, "close write:", err)
		os.Exit(1)
	}
	reply, err := io.ReadAll(conn)
	if err != nil {
		fmt.Fprintln(os.Stderr, "read:", err)
		os.Exit(1)
	}
	fmt.Printf("received: %s\n", reply)
	_ = conn.(net.Conn).Close()
}
