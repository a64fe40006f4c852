// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// freeLoopbackPort returns a TCP port nothing listens on now. It is taken
// from below the kernel's ephemeral range (32768 and up by default) and
// Nomad's dynamic ports (20000 and up): a port the kernel hands out, to a
// listener on port 0 or to an outgoing connection of a test beside this
// one, could be taken again between this check and the executor's bind.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		port := 10000 + rand.IntN(10000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			must.NoError(t, l.Close())
			return port
		}
	}
	t.Fatal("no free loopback port in 10000-19999")
	return 0
}

// startListenerTask runs module in command mode with the listener http
// granted on address:port (in netns when set).
func startListenerTask(t *testing.T, module, address string, port int, netns string) (*task, string) {
	t.Helper()
	local, logs := t.TempDir(), t.TempDir()
	testmodule.Install(t, module, local, "server.wasm")
	req := &proto.StartRequest{
		Module: "/local/server.wasm", Entrypoint: "_start", Engine: executor.EngineAuto,
		Mounts: []*proto.Mount{
			{GuestPath: "/local", HostPath: local},
			{GuestPath: "/alloc", HostPath: t.TempDir()},
			{GuestPath: "/secrets", HostPath: t.TempDir(), ReadOnly: true},
		},
		CacheDir: cacheDirForTest(t), StateDir: logs,
		StdoutPath: filepath.Join(logs, "stdout"), StderrPath: filepath.Join(logs, "stderr"),
		Listeners:        []*proto.Listener{{Label: "http", Address: address, Port: int32(port)}},
		NetworkNamespace: netns,
	}
	s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
	tk, err := s.start(context.Background(), req, nil)
	must.NoError(t, err)
	t.Cleanup(func() {
		tk.prog.stop(int32(syscall.SIGKILL))
		<-tk.run.done()
		tk.prog.close()
	})
	return tk, req.StderrPath
}

func get(url string) (int, string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestGrantedListeners: a guest in C (accept on the preopened socket) and
// one in Go (net.FileListener) serve HTTP through the listener granted to
// them, which they find through WASM_LISTENER_HTTP.
func TestGrantedListeners(t *testing.T) {
	t.Parallel()
	for module, greeting := range map[string]string{"listen": "Hello from a WebAssembly listener:", "listen-go": "hello from go listener"} {
		t.Run(module, func(t *testing.T) {
			port := freeLoopbackPort(t)
			tk, stderr := startListenerTask(t, module, "127.0.0.1", port, "")
			for _, path := range []string{"/a", "/b"} {
				code, body, err := get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
				must.NoError(t, err, must.Sprintf("stderr: %s", readFile(t, stderr)))
				must.Eq(t, 200, code)
				must.Eq(t, greeting+" "+path+"\n", body)
			}
			select {
			case <-tk.run.done():
				t.Fatalf("the guest exited: %v", tk.run.exitStatus())
			default:
			}
		})
	}
}

// TestGrantedListenerTaken: a port someone else holds is a clear error of
// the node at start, not a guest that runs without its socket.
func TestGrantedListenerTaken(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must.NoError(t, err)
	defer l.Close()
	local := t.TempDir()
	testmodule.Install(t, "listen", local, "server.wasm")
	s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
	_, err = s.start(context.Background(), &proto.StartRequest{
		Module: "/local/server.wasm", Entrypoint: "_start", Engine: executor.EngineAuto,
		Mounts:    []*proto.Mount{{GuestPath: "/local", HostPath: local}},
		CacheDir:  cacheDirForTest(t),
		Listeners: []*proto.Listener{{Label: "http", Address: "127.0.0.1", Port: int32(l.Addr().(*net.TCPAddr).Port)}},
	}, nil)
	must.ErrorContains(t, err, "cannot bind its listeners (http on 127.0.0.1:")
	must.Eq(t, executor.ClassNode, executor.ClassOf(err))
}

// TestListenerInNetworkNamespace: with a network namespace, the guest's
// listener lives inside it (reachable there, absent on the host) while the
// executor stays in its own.
func TestListenerInNetworkNamespace(t *testing.T) {
	if os.Geteuid() != 0 || runtime.GOOS != "linux" {
		if os.Getenv("CI") == "true" {
			t.Fatal("network namespaces need root on Linux, and CI runs as root")
		}
		t.Skip("network namespaces need root on Linux")
	}
	t.Parallel()
	name := "wasm-test-" + strconv.Itoa(os.Getpid())
	run := func(args ...string) {
		out, err := exec.Command("ip", args...).CombinedOutput()
		must.NoError(t, err, must.Sprintf("ip %v: %s", args, out))
	}
	run("netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", name).Run() })
	run("netns", "exec", name, "ip", "link", "set", "lo", "up")
	nsPath := "/var/run/netns/" + name

	port := freeLoopbackPort(t)
	startListenerTask(t, "listen", "127.0.0.1", port, nsPath)

	// Not on the host's loopback...
	_, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
	must.Error(t, err, must.Sprint("the listener is on the host, not in the namespace"))
	// ...but in the namespace's.
	var conn net.Conn
	must.NoError(t, inNetNS(nsPath, func() error {
		var err error
		conn, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
		return err
	}))
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "GET /ns HTTP/1.0\r\n\r\n")
	must.NoError(t, err)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(conn)
	must.NoError(t, err)
	must.StrContains(t, string(b), "Hello from a WebAssembly listener: /ns")
}

// TestIdleGoListenerWaits: a Go guest idle on its granted listener waits
// in poll_oneoff instead of spinning (wazero's own poll_oneoff reports a
// non-blocking socket ready at once, and kept a core busy). Not parallel:
// it measures the CPU time of the whole test process.
func TestIdleGoListenerWaits(t *testing.T) {
	cpu := func() time.Duration {
		var u syscall.Rusage
		must.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &u))
		return time.Duration(u.Utime.Nano() + u.Stime.Nano())
	}
	// What the process uses with no guest (the race detector's runtime
	// alone uses a fifth of a core), then with an idle Go guest; each
	// sleep is the measurement's span, not synchronisation.
	const span = 2 * time.Second
	before := cpu()
	time.Sleep(span)
	baseline := cpu() - before

	port := freeLoopbackPort(t)
	startListenerTask(t, "listen-go", "127.0.0.1", port, "")
	waitUntil(t, func() bool {
		code, _, err := get(fmt.Sprintf("http://127.0.0.1:%d/ready", port))
		return err == nil && code == 200
	}, "the Go listener never answered")
	http.DefaultClient.CloseIdleConnections()
	before = cpu()
	time.Sleep(span)
	used := cpu() - before
	t.Logf("in %v the process used %v of CPU with an idle Go listener, %v without", span, used, baseline)
	must.Less(t, span/2, used-baseline, must.Sprint("an idle Go guest spins on its listener"))
}
