// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Command wagi-go is the Go (GOOS=wasip1) test guest of the HTTP trigger
// (WAGI, CGI style): the request is in the environment, its body on stdin,
// and the CGI response goes to stdout.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	path := os.Getenv("PATH_INFO")
	if path == "/echo" {
		fmt.Print("Content-Type: application/octet-stream\n\n")
		if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
			fmt.Fprintln(os.Stderr, "echo:", err)
			os.Exit(1)
		}
		return
	}
	fmt.Printf("Content-Type: text/plain\n\nhello from go %s %s %s\n",
		os.Getenv("REQUEST_METHOD"), path, os.Getenv("QUERY_STRING"))
}
