// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"
	"golang.org/x/sys/unix"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// testNetNS makes a network namespace with its loopback up, as Nomad makes
// one per allocation for bridge networking, and returns its path. It needs
// root: the test is skipped without it, except in CI, which runs as root.
func testNetNS(t *testing.T, name string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("network namespaces need root, and CI runs as root")
		}
		t.Skip("network namespaces need root")
	}
	name = fmt.Sprintf("wasm-sockets-%d-%s", os.Getpid(), name)
	run := func(args ...string) {
		out, err := exec.Command("ip", args...).CombinedOutput()
		must.NoError(t, err, must.Sprintf("ip %v: %s", args, out))
	}
	run("netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", name).Run() })
	run("netns", "exec", name, "ip", "link", "set", "lo", "up")
	return "/var/run/netns/" + name
}

// dialIn connects to 127.0.0.1:port inside the network namespace netns.
func dialIn(t *testing.T, netns string, port int) net.Conn {
	t.Helper()
	var conn net.Conn
	must.NoError(t, inNetNS(netns, func() error {
		var err error
		conn, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
		return err
	}))
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// request sends an HTTP/1.0 request for path on conn and returns the whole
// response.
func request(t *testing.T, conn net.Conn, path string) string {
	t.Helper()
	_, err := fmt.Fprintf(conn, "GET %s HTTP/1.0\r\n\r\n", path)
	must.NoError(t, err)
	must.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	b, err := io.ReadAll(conn)
	must.NoError(t, err, must.Sprintf("the response to %s", path))
	return string(b)
}

// startSharedListenerTask starts the listen guest as task id of the shared
// executor s, with the listener http granted on 127.0.0.1:port inside
// netns, and stops it when the test ends.
func startSharedListenerTask(t *testing.T, s *server, id string, port int, netns string) *task {
	t.Helper()
	local, logs := t.TempDir(), t.TempDir()
	testmodule.Install(t, "listen", local, "server.wasm")
	req := &proto.StartRequest{
		TaskId: id, Module: "/local/server.wasm", Entrypoint: "_start", Engine: executor.EngineAuto,
		Mounts:   []*proto.Mount{{GuestPath: "/local", HostPath: local}},
		CacheDir: cacheDirForTest(t), StdoutPath: filepath.Join(logs, "stdout"), StderrPath: filepath.Join(logs, "stderr"),
		Listeners:        []*proto.Listener{{Label: "http", Address: "127.0.0.1", Port: int32(port)}},
		NetworkNamespace: netns,
	}
	precompile(t, req, filepath.Join(local, "server.wasm"))
	tk, err := s.start(context.Background(), req, nil)
	must.NoError(t, err)
	t.Cleanup(func() {
		tk.prog.stop(int32(syscall.SIGKILL))
		<-tk.run.done()
		tk.prog.close()
	})
	return tk
}

// waitAccepted waits until a socket of this process is the far end of
// conn: the guest has accepted it.
func waitAccepted(t *testing.T, conn net.Conn) {
	t.Helper()
	local := conn.LocalAddr().(*net.TCPAddr)
	waitUntil(t, func() bool {
		entries, err := os.ReadDir("/proc/self/fd")
		must.NoError(t, err)
		for _, e := range entries {
			fd, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if sa, err := unix.Getpeername(fd); err == nil {
				if a, ok := sa.(*unix.SockaddrInet4); ok && a.Port == local.Port && net.IP(a.Addr[:]).Equal(local.IP) {
					return true
				}
			}
		}
		return false
	}, "the guest never accepted the connection")
}

// TestStopLeavesNeighbourSockets: two tasks of the shared executor listen
// on the same address and port, each in its own network namespace, as two
// allocations with bridge networking do. Stopping one shuts down its own
// sockets, which wakes its guest from its accept, and nothing of the
// other's: neither its listener nor a connection it holds.
func TestStopLeavesNeighbourSockets(t *testing.T) {
	nsA, nsB := testNetNS(t, "a"), testNetNS(t, "b")
	t.Parallel()
	port := freeLoopbackPort(t)
	s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
	s.shared = true
	a := startSharedListenerTask(t, s, "a", port, nsA)
	b := startSharedListenerTask(t, s, "b", port, nsB)
	must.StrContains(t, request(t, dialIn(t, nsA, port), "/a"), "Hello from a WebAssembly listener: /a")
	must.StrContains(t, request(t, dialIn(t, nsB, port), "/b"), "Hello from a WebAssembly listener: /b")

	// B's guest accepts this one and waits in its read on it.
	held := dialIn(t, nsB, port)
	waitAccepted(t, held)

	a.prog.stop(int32(syscall.SIGTERM))
	select {
	case <-a.run.done():
	case <-time.After(10 * time.Second):
		t.Fatal("the stopped guest was not woken from its accept")
	}
	must.Eq(t, int32(syscall.SIGTERM), a.run.exitStatus().Signal)

	must.StrContains(t, request(t, held, "/held"), "Hello from a WebAssembly listener: /held",
		must.Sprint("the neighbour's stop shut down a connection this task had accepted"))
	must.StrContains(t, request(t, dialIn(t, nsB, port), "/after"), "Hello from a WebAssembly listener: /after",
		must.Sprint("the neighbour's stop shut down this task's listener"))
	select {
	case <-b.run.done():
		t.Fatalf("the guest ended with its neighbour's stop: %v", b.run.exitStatus())
	default:
	}
}

// TestOutboundInNetworkNamespace: in bridge mode the guest's sockets are
// made in the allocation's namespace, so 127.0.0.1 is the namespace's
// loopback (the group's other tasks and sidecars), not the node's.
func TestOutboundInNetworkNamespace(t *testing.T) {
	ns := testNetNS(t, "out")
	t.Parallel()
	port, accepted := echoServerIn(t, ns, "from the namespace:")
	r := runOutboundIn(t, ns, "connect", loopbackRules(port), "nonblock", "127.0.0.1", strconv.Itoa(port), "hi")
	must.Eq(t, int32(0), r.exit, must.Sprintf("stdout: %s\nstderr: %s", r.stdout, r.stderr))
	must.StrContains(t, r.stdout, "received: from the namespace:hi")
	must.Eq(t, 1, accepted())
}
