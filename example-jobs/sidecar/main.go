// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Command sidecar is the program of the examples' Docker images (built FROM
// scratch, so it is its own shell):
//
//	write FILE TEXT  writes a file
//	heartbeat        prints a line every second until it is stopped
//	serve PORT       serves HTTP on PORT ("Hello from a Docker task: PATH")
//	                 until it is stopped
//	count PORT       serves HTTP on PORT, answering each request with the
//	                 number of requests so far ("count N"), until stopped
//	get URL          fetches URL until it answers 200 (every 250 ms), prints
//	                 the body, then waits until it is stopped, so that it
//	                 fits a service job
//	pause            waits until it is stopped: the infra (pause) container
//	                 of Docker tasks in bridge networking
//
// "Stopped" is SIGTERM or SIGINT, after which it exits 0.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

const usage = "usage: sidecar write FILE TEXT | heartbeat | serve PORT | count PORT | get URL | pause"

func main() {
	args := os.Args[1:]
	switch {
	case len(args) >= 3 && args[0] == "write":
		if err := os.WriteFile(args[1], []byte(args[2]+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("wrote", args[1])
	case len(args) >= 1 && args[0] == "heartbeat":
		heartbeat()
	case len(args) >= 2 && (args[0] == "serve" || args[0] == "count"):
		if err := serve(args[1], args[0] == "count"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case len(args) >= 2 && args[0] == "get":
		get(args[1])
	case len(args) >= 1 && args[0] == "pause":
		<-stopped()
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
}

// stopped is closed on SIGTERM or SIGINT. As PID 1 of its container the
// program must handle SIGTERM itself: a stop is the normal end of these
// long-running commands, so they return and the program exits 0.
func stopped() <-chan struct{} {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	go func() {
		<-sig
		close(done)
	}()
	return done
}

// heartbeat prints a line every second until it is stopped.
func heartbeat() {
	stop := stopped()
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

// serve answers every request with a greeting naming its path (or, with
// count, with the number of requests so far), on all addresses of the
// container and the given port, until it is stopped.
func serve(port string, count bool) error {
	stop := stopped()
	l, err := net.Listen("tcp", net.JoinHostPort("", port))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	var requests atomic.Int64
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if count && r.URL.Path == "/health" {
			fmt.Fprintln(w, "ok")
			return
		}
		if count {
			fmt.Fprintf(w, "count %d\n", requests.Add(1))
			return
		}
		fmt.Fprintf(w, "Hello from a Docker task: %s\n", r.URL.Path)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Println("serving on", l.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-stop:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	fmt.Println("sidecar stopped")
	return nil
}

// get fetches url until it answers 200, prints the body on stdout (and
// each failed attempt on stderr), then waits until it is stopped.
func get(url string) {
	stop := stopped()
	client := &http.Client{Timeout: 5 * time.Second}
	for attempt := 1; ; attempt++ {
		body, err := fetch(client, url)
		if err == nil {
			fmt.Printf("GET %s:\n%s", url, body)
			break
		}
		fmt.Fprintf(os.Stderr, "GET %s (attempt %d): %v\n", url, attempt, err)
		select {
		case <-stop:
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
	<-stop
	fmt.Println("sidecar stopped")
}

func fetch(client *http.Client, url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %q", resp.Status, b)
	}
	return string(b), nil
}
