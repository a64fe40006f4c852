// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// echoServer listens on loopback and answers each connection with
// "echo:" and what it read until its peer's end of writing. It returns
// its port and a count of the connections it accepted.
func echoServer(t testing.TB) (int, func() int) {
	t.Helper()
	return echoServerIn(t, "", "echo:")
}

// echoServerIn is echoServer in the network namespace netns, answering
// with prefix.
func echoServerIn(t testing.TB, netns, prefix string) (int, func() int) {
	t.Helper()
	var l net.Listener
	must.NoError(t, inNetNS(netns, func() error {
		var err error
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}))
	t.Cleanup(func() { _ = l.Close() })
	var mu sync.Mutex
	accepted := 0
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted++
			mu.Unlock()
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				_, _ = io.WriteString(c, prefix+string(b))
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port, func() int { mu.Lock(); defer mu.Unlock(); return accepted }
}

// outboundRun is how a run of an outbound guest ended.
type outboundRun struct {
	exit           int32
	stdout, stderr string
	network        *taskNetwork
}

// runOutbound runs module (a test guest) with args as a task's instance
// whose outbound policy is out, through the program and instance path.
func runOutbound(t testing.TB, module string, out *proto.Outbound, args ...string) outboundRun {
	t.Helper()
	return runOutboundIn(t, "", module, out, args...)
}

// runOutboundIn is runOutbound for a task in the network namespace netns.
func runOutboundIn(t testing.TB, netns, module string, out *proto.Outbound, args ...string) outboundRun {
	t.Helper()
	p, network := outboundProgram(t, netns, module, out, false)
	stdout, stderr := &collect{}, &collect{}
	in, err := p.start(runOptions{argv0: "app.wasm", args: args, streams: stdio{stdout: stdout, stderr: stderr}})
	must.NoError(t, err)
	<-in.ended
	return outboundRun{exit: in.status.ExitCode, stdout: stdout.String(), stderr: stderr.String(), network: network}
}

// outboundProgram loads module (a test guest) as a task's program whose
// outbound policy is out, in the network namespace netns (when set), with
// the per-loop check when interruptible; both last until the test ends.
func outboundProgram(t testing.TB, netns, module string, out *proto.Outbound, interruptible bool) (*program, *taskNetwork) {
	t.Helper()
	engine, err := resolveEngine(executor.EngineAuto)
	must.NoError(t, err)
	network, err := newTaskNetwork(out, netns, hclog.NewNullLogger())
	must.NoError(t, err)
	t.Cleanup(network.close)
	p, _ := testProgram(t, module, programSpec{Engine: engine, Network: network, Interruptible: interruptible})
	return p, network
}

// loopbackRules allows the guest the port on 127.0.0.1 (and localhost),
// within an operator's ceiling of anything but the metadata address.
func loopbackRules(port int) *proto.Outbound {
	return &proto.Outbound{
		Rules:        []string{fmt.Sprintf("tcp://127.0.0.1:%d", port), fmt.Sprintf("tcp://localhost:%d", port)},
		Allow:        []string{"tcp://*:*"},
		DenyNetworks: []string{"169.254.169.254/32"},
	}
}

// TestOutboundC: the C guest (WasmEdge's socket extension, as its C
// header declares it) connects to a server on loopback, sends, receives,
// with blocking calls and with non-blocking ones waited for in
// poll_oneoff, by address and by a name it resolves with
// sock_getaddrinfo; each allowed connect is counted.
func TestOutboundC(t *testing.T) {
	t.Parallel()
	port, accepted := echoServer(t)
	for _, tc := range []struct{ mode, host string }{
		{"block", "127.0.0.1"},
		{"nonblock", "127.0.0.1"},
		{"block", "localhost"},
		{"nonblock", "localhost"},
	} {
		t.Run(tc.mode+"/"+tc.host, func(t *testing.T) {
			r := runOutbound(t, "connect", loopbackRules(port), tc.mode, tc.host, strconv.Itoa(port), "hello "+tc.mode)
			must.Eq(t, int32(0), r.exit, must.Sprintf("stderr: %s", r.stderr))
			must.StrContains(t, r.stdout, fmt.Sprintf("connected to 127.0.0.1:%d", port))
			must.StrContains(t, r.stdout, "received: echo:hello "+tc.mode)
			if tc.host == "localhost" {
				must.StrContains(t, r.stdout, "resolved localhost to 127.0.0.1")
			}
			opened, refused := r.network.counts()
			must.Eq(t, uint64(1), opened)
			must.Eq(t, uint64(0), refused)
		})
	}
	must.Eq(t, 4, accepted())
}

// TestOutboundGo: a Go guest dials with github.com/stealthrocket/net's
// wasip1.Dial (a non-blocking connect polled for writing, then SO_ERROR
// and the peer's address), sends and receives.
func TestOutboundGo(t *testing.T) {
	t.Parallel()
	port, accepted := echoServer(t)
	r := runOutbound(t, "connect-go", loopbackRules(port), fmt.Sprintf("127.0.0.1:%d", port), "hello from go")
	must.Eq(t, int32(0), r.exit, must.Sprintf("stdout: %s\nstderr: %s", r.stdout, r.stderr))
	must.StrContains(t, r.stdout, fmt.Sprintf("connected to 127.0.0.1:%d", port))
	must.StrContains(t, r.stdout, "received: echo:hello from go")
	must.Eq(t, 1, accepted())
}

// TestOutboundGoRefused: the Go guest's dial to a destination no rule
// allows fails with EACCES (wasip1's "Permission denied"), and reaches
// nothing.
func TestOutboundGoRefused(t *testing.T) {
	t.Parallel()
	port, accepted := echoServer(t)
	out := &proto.Outbound{Rules: []string{"tcp://127.0.0.1:1"}, Allow: []string{"tcp://*:*"}}
	r := runOutbound(t, "connect-go", out, fmt.Sprintf("127.0.0.1:%d", port), "x")
	must.Eq(t, int32(1), r.exit, must.Sprintf("stdout: %s\nstderr: %s", r.stdout, r.stderr))
	must.StrContains(t, r.stderr, "connect: Permission denied")
	_, refused := r.network.counts()
	must.Eq(t, uint64(1), refused)
	must.Eq(t, 0, accepted())
}

// TestOutboundRefused: a connect that no rule allows fails with EACCES
// (2) before any packet leaves, is counted, and queues one task event
// naming the destination and what would allow it; a second one to the
// same destination adds no event. A name no rule names is not resolved.
func TestOutboundRefused(t *testing.T) {
	t.Parallel()
	port, accepted := echoServer(t)
	other := &proto.Outbound{Rules: []string{"tcp://127.0.0.1:1"}, Allow: []string{"tcp://*:*"}}
	for _, tc := range []struct {
		name string
		out  *proto.Outbound
		host string
		step string
	}{
		{"no rules", nil, "127.0.0.1", "sock_connect: errno 2"},
		{"another port", other, "127.0.0.1", "sock_connect: errno 2"},
		{"denied by the operator", &proto.Outbound{Rules: []string{"tcp://*:*"}, Allow: []string{"tcp://*:*"}, DenyNetworks: []string{"loopback"}}, "127.0.0.1", "sock_connect: errno 2"},
		{"beyond the operator's ceiling", &proto.Outbound{Rules: []string{"tcp://127.0.0.1:*"}, Allow: []string{"tcp://10.0.0.0/8:*"}}, "127.0.0.1", "sock_connect: errno 2"},
		{"a name no rule names", other, "localhost", "sock_getaddrinfo: errno 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runOutbound(t, "connect", tc.out, "block", tc.host, strconv.Itoa(port), "x")
			must.Eq(t, int32(2), r.exit, must.Sprintf("stdout: %s\nstderr: %s", r.stdout, r.stderr))
			must.StrContains(t, r.stderr, tc.step)
			notices := r.network.takeNotices()
			must.Len(t, 1, notices)
			if strings.HasPrefix(tc.step, "sock_connect") {
				_, refused := r.network.counts()
				must.Eq(t, uint64(1), refused)
				must.StrContains(t, notices[0].Message, fmt.Sprintf("connection to 127.0.0.1:%d refused (EACCES)", port))
				// The same destination again: counted, not reported again.
				must.False(t, r.network.Allow(mustAddrPort(t, fmt.Sprintf("127.0.0.1:%d", port)), nil))
				must.Len(t, 0, r.network.takeNotices())
			} else {
				must.StrContains(t, notices[0].Message, "lookup of localhost was refused")
			}
		})
	}
	must.Eq(t, 0, accepted(), must.Sprint("a refused connect reached the server"))
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	must.NoError(t, err)
	return ap
}

// holdingServer listens on loopback, takes one connection, hands it over
// and never answers on it; the connection and the listener are closed when
// the test ends. It returns the port.
func holdingServer(t *testing.T) (int, <-chan net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must.NoError(t, err)
	held := make(chan net.Conn, 1)
	var conn net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		if c, err := l.Accept(); err == nil {
			conn = c
			held <- c
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-accepted
		if conn != nil {
			_ = conn.Close()
		}
	})
	return l.Addr().(*net.TCPAddr).Port, held
}

// peerSockets counts the sockets of this process connected to port on
// loopback: a guest's connections, seen from the host.
func peerSockets(t *testing.T, port int) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	must.NoError(t, err)
	n := 0
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if sa, err := unix.Getpeername(fd); err == nil {
			if a, ok := sa.(*unix.SockaddrInet4); ok && a.Port == port {
				n++
			}
		}
	}
	return n
}

// TestOutboundStopClosesSockets: a guest stopped while it waits on its
// connection is woken, and its socket is closed with it.
func TestOutboundStopClosesSockets(t *testing.T) {
	t.Parallel()
	port, held := holdingServer(t)
	p, _ := outboundProgram(t, "", "connect", loopbackRules(port), true)
	in, err := p.start(runOptions{argv0: "app.wasm", args: []string{"block", "127.0.0.1", strconv.Itoa(port), "x"}, streams: stdio{stdout: &collect{}, stderr: &collect{}}})
	must.NoError(t, err)
	<-held // the guest has connected
	waitUntil(t, func() bool { return peerSockets(t, port) == 1 }, "the guest's connection is not open")
	in.stop(int32(unix.SIGTERM))
	select {
	case <-in.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the stop did not wake the guest from its receive")
	}
	must.Eq(t, int32(unix.SIGTERM), in.status.Signal)
	waitUntil(t, func() bool { return peerSockets(t, port) == 0 }, "the stopped guest's connection was left open")
}

// dnsServer answers A queries for the names in answers (FQDN to IPv4) on
// a UDP port of loopback, and NXDOMAIN for the rest; it returns its
// address.
func dnsServer(t *testing.T, answers map[string][4]byte) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	must.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			resp := dnsmessage.Message{Header: dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true}, Questions: []dnsmessage.Question{q}}
			ip, ok := answers[strings.ToLower(q.Name.String())]
			switch {
			case !ok:
				resp.RCode = dnsmessage.RCodeNameError
			case q.Type == dnsmessage.TypeA:
				resp.Answers = []dnsmessage.Resource{{
					Header: dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 5},
					Body:   &dnsmessage.AResource{A: ip},
				}}
			}
			out, err := resp.Pack()
			if err == nil {
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// TestOutboundResolvesWithTheTasksDNS: names are resolved with the
// task's name servers (the group's dns block) and search domains, and a
// name rule allows the addresses resolved for its name: the guest reaches
// db.service.consul, and db through the search domain service.consul.
func TestOutboundResolvesWithTheTasksDNS(t *testing.T) {
	t.Parallel()
	port, accepted := echoServer(t)
	dns := dnsServer(t, map[string][4]byte{"db.service.consul.": {127, 0, 0, 1}})
	out := &proto.Outbound{
		Rules:       []string{fmt.Sprintf("tcp://db.service.consul:%d", port), fmt.Sprintf("tcp://db:%d", port)},
		Allow:       []string{"tcp://*:*"},
		DnsServers:  []string{dns},
		DnsSearches: []string{"service.consul"},
	}
	for _, host := range []string{"db.service.consul", "db"} {
		r := runOutbound(t, "connect", out, "block", host, strconv.Itoa(port), "hi")
		must.Eq(t, int32(0), r.exit, must.Sprintf("%s: stdout: %s\nstderr: %s", host, r.stdout, r.stderr))
		must.StrContains(t, r.stdout, "resolved "+host+" to 127.0.0.1")
		must.StrContains(t, r.stdout, "received: echo:hi")
	}
	// A name the server does not know: no such host (EAI_NONAME, 84).
	r := runOutbound(t, "connect", &proto.Outbound{Rules: []string{"tcp://*:*"}, Allow: []string{"tcp://*:*"}, DnsServers: []string{dns}}, "block", "nothing.service.consul", strconv.Itoa(port), "hi")
	must.Eq(t, int32(84), r.exit, must.Sprintf("stderr: %s", r.stderr))
	must.Eq(t, 2, accepted())
}

// TestOutboundHTTPRequestClosesItsSockets: in http mode an instance's
// sockets are closed when its request ends, though its guest left its
// connection open (the connect guest as an HTTP handler), and the task's metrics
// count the connection.
func TestOutboundHTTPRequestClosesItsSockets(t *testing.T) {
	t.Parallel()
	port, held := holdingServer(t)
	h := startHTTPTask(t, "connect", func(r *proto.StartRequest) { r.Outbound = loopbackRules(port) })
	resp := h.do(t, "GET", "/?"+strconv.Itoa(port), "")
	must.Eq(t, 200, resp.status)
	must.StrContains(t, resp.body, "connect errno 0")
	conn := <-held
	waitUntil(t, func() bool { return peerSockets(t, port) == 0 }, "the request's connection outlived its request")
	must.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	n, err := conn.Read(make([]byte, 1))
	must.Eq(t, 0, n)
	must.ErrorIs(t, err, io.EOF, must.Sprint("the server did not see the connection closed"))
	metrics, err := http.Get("http://" + h.tk.trigger().metricsAddr.String() + "/metrics")
	must.NoError(t, err)
	defer metrics.Body.Close()
	b, err := io.ReadAll(metrics.Body)
	must.NoError(t, err)
	must.StrContains(t, string(b), `wasm_outbound_connections_total{result="opened"} 1`)
	must.StrContains(t, string(b), `wasm_outbound_connections_total{result="refused"} 0`)
}

// TestOutboundBridgeInSharedExecutor: a bridge-mode task with outbound
// rules is refused by a shared executor that runs as its user (it cannot
// enter the allocation's namespace), as the operator's to fix, before
// anything of the task is opened.
func TestOutboundBridgeInSharedExecutor(t *testing.T) {
	t.Parallel()
	s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
	s.shared = true
	s.user.Store(&proto.RunAs{Name: "nobody", Uid: 65534, Gid: 65534})
	_, err := s.start(context.Background(), &proto.StartRequest{
		TaskId: "bridge", Module: "/local/app.wasm", NetworkNamespace: "/var/run/netns/alloc",
		Outbound: &proto.Outbound{Rules: []string{"tcp://127.0.0.1:5432"}, Allow: []string{"tcp://*:*"}},
	}, nil)
	must.ErrorContains(t, err, "outbound connections from a task with bridge networking need an executor of the task's own")
	must.Eq(t, executor.ClassOperator, executor.ClassOf(err))
}
