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

// namespacedSockets is a listener on 127.0.0.1:port bound inside netns,
// recorded as an instance's sockets would be.
type namespacedSockets struct {
	netns    string
	listener *net.TCPListener
	sockets  *guestSockets
}

func bindIn(t *testing.T, netns string, port int) *namespacedSockets {
	t.Helper()
	before := openSockets()
	ns := &namespacedSockets{netns: netns, listener: listenIn(t, netns, port)}
	ns.sockets = recordGranted(t, before, port)
	return ns
}

// listenIn listens on 127.0.0.1:port inside netns until the test ends.
func listenIn(t *testing.T, netns string, port int) *net.TCPListener {
	t.Helper()
	var l net.Listener
	must.NoError(t, inNetNS(netns, func() error {
		var err error
		l, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		return err
	}))
	t.Cleanup(func() { _ = l.Close() })
	return l.(*net.TCPListener)
}

// recordGranted records the listeners bound since before for an instance
// granted 127.0.0.1:port, until the test ends.
func recordGranted(t *testing.T, before map[uint64]bool, port int) *guestSockets {
	t.Helper()
	g := recordListeners(before, []*proto.Listener{{Label: "http", Address: "127.0.0.1", Port: int32(port)}})
	t.Cleanup(g.release)
	return g
}

// accept accepts a connection made in its namespace, with hello written
// on it by its client.
func (ns *namespacedSockets) accept(t *testing.T, port int, hello string) (server, client net.Conn) {
	t.Helper()
	client = dialIn(t, ns.netns, port)
	_, err := io.WriteString(client, hello)
	must.NoError(t, err)
	must.NoError(t, ns.listener.SetDeadline(time.Now().Add(5*time.Second)))
	server, err = ns.listener.Accept()
	must.NoError(t, err)
	t.Cleanup(func() { _ = server.Close() })
	return server, client
}

// fdOf is conn's descriptor.
func fdOf(t *testing.T, conn syscall.Conn) int {
	t.Helper()
	rc, err := conn.SyscallConn()
	must.NoError(t, err)
	var fd int
	must.NoError(t, rc.Control(func(f uintptr) { fd = int(f) }))
	return fd
}

// TestGuestSocketsAcrossNamespaces: two instances' listeners on one
// address and port, in two network namespaces. Each instance's sockets
// are its listener and the connections accepted on it, never the other's:
// the other's readiness does not wake its poll, and its shutdown leaves the
// other's sockets working.
func TestGuestSocketsAcrossNamespaces(t *testing.T) {
	nsA, nsB := testNetNS(t, "c"), testNetNS(t, "d")
	t.Parallel()
	port := freeLoopbackPort(t)
	a, b := bindIn(t, nsA, port), bindIn(t, nsB, port)
	must.Eq(t, []int{fdOf(t, a.listener)}, a.sockets.fds(false))
	must.Eq(t, []int{fdOf(t, b.listener)}, b.sockets.fds(false))

	// A connection waits on B's listener: B is ready, A is not.
	dialIn(t, nsB, port)
	must.True(t, b.sockets.poll(false, 5*time.Second))
	must.False(t, a.sockets.poll(false, 50*time.Millisecond), must.Sprint("a connection to the neighbour's listener woke the poll"))

	// B takes it; then each instance accepts one with a request on it.
	idle, err := b.listener.Accept()
	must.NoError(t, err)
	defer idle.Close()
	bConn, bClient := b.accept(t, port, "to b")
	aConn, aClient := a.accept(t, port, "to a")
	must.SliceContainsAll(t, []int{fdOf(t, a.listener), fdOf(t, aConn.(*net.TCPConn))}, a.sockets.fds(false))
	must.SliceContainsAll(t, []int{fdOf(t, b.listener), fdOf(t, idle.(*net.TCPConn)), fdOf(t, bConn.(*net.TCPConn))}, b.sockets.fds(true))
	buf := make([]byte, 4)
	must.NoError(t, aConn.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.ReadFull(aConn, buf)
	must.NoError(t, err)
	must.False(t, a.sockets.poll(false, 50*time.Millisecond), must.Sprint("the neighbour's readable connection woke the poll"))

	// A's stop shuts down A's sockets, and nothing of B's.
	a.sockets.shutdown()
	must.NoError(t, aClient.SetReadDeadline(time.Now().Add(5*time.Second)))
	n, err := aClient.Read(buf)
	must.Eq(t, 0, n)
	must.ErrorIs(t, err, io.EOF, must.Sprint("the instance's connection was not shut down"))
	must.NoError(t, a.listener.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = a.listener.Accept()
	must.Error(t, err, must.Sprint("the instance's listener was not shut down"))

	must.NoError(t, bConn.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.ReadFull(bConn, buf)
	must.NoError(t, err, must.Sprint("the neighbour's connection was shut down"))
	must.Eq(t, "to b", string(buf))
	_, err = io.WriteString(bConn, "back")
	must.NoError(t, err)
	must.NoError(t, bClient.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.ReadFull(bClient, buf)
	must.NoError(t, err)
	must.Eq(t, "back", string(buf))
	second, _ := b.accept(t, port, "more")
	must.NotNil(t, second, must.Sprint("the neighbour's listener was shut down"))
}

// TestGuestSocketsWithoutNamespaceCookies: on a kernel that cannot tell
// two namespaces' sockets apart, a connection on a port that two instances
// listen on is polled by both (a spurious wake-up at worst) and shut down
// by neither; one on a port of one instance alone is that one's.
func TestGuestSocketsWithoutNamespaceCookies(t *testing.T) {
	nsA, nsB := testNetNS(t, "e"), testNetNS(t, "f")
	t.Parallel()
	port := freeLoopbackPort(t)
	a, b := bindIn(t, nsA, port), bindIn(t, nsB, port)
	for _, ns := range []*namespacedSockets{a, b} {
		must.NonZero(t, ns.sockets.listeners[0].netns, must.Sprint("this kernel has namespace cookies"))
		ns.sockets.listeners[0].netns = 0 // as without them
	}
	bConn, _ := b.accept(t, port, "to b")
	bFD := fdOf(t, bConn.(*net.TCPConn))
	must.SliceContains(t, a.sockets.fds(false), bFD)
	must.SliceContains(t, b.sockets.fds(false), bFD)
	must.SliceNotContains(t, a.sockets.fds(true), bFD)
	must.SliceNotContains(t, b.sockets.fds(true), bFD)

	// Once A is gone, the port is B's alone.
	a.sockets.release()
	must.SliceContains(t, b.sockets.fds(true), bFD)
}

// TestRecordListeners: an instance's listeners are those bound for it on
// the address it was granted: not one open before, or claimed by another
// instance (two starts whose bindings overlapped), or on another address.
func TestRecordListeners(t *testing.T) {
	nsA, nsB, nsC := testNetNS(t, "g"), testNetNS(t, "h"), testNetNS(t, "i")
	t.Parallel()
	port := freeLoopbackPort(t)
	listenIn(t, nsA, port) // someone else's, open before
	before := openSockets()
	b := listenIn(t, nsB, port)
	listenIn(t, nsB, port+1) // not granted
	bSockets := recordGranted(t, before, port)
	must.Eq(t, []int{fdOf(t, b)}, bSockets.fds(false))

	c := listenIn(t, nsC, port)
	cSockets := recordGranted(t, before, port) // b is new since before too
	must.Eq(t, []int{fdOf(t, c)}, cSockets.fds(false))

	// A listener closed is no longer the instance's, whatever takes its
	// descriptor's number next.
	must.NoError(t, c.Close())
	must.Nil(t, cSockets.fds(false))
}
