// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoenig/test/must"
	"golang.org/x/sys/unix"
)

// listen grants the guest a new loopback listener: its descriptor and
// its address.
func (h *host) listen() (uint32, string) {
	h.t.Helper()
	s, err := Listen("127.0.0.1:0")
	must.NoError(h.t, err)
	addr, err := s.Addr()
	must.NoError(h.t, err)
	return h.in.table.AddListener(s), addr.String()
}

// dial connects a peer to addr, closed when the test ends.
func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	must.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c.(*net.TCPConn)
}

// accept is sock_accept(l, flags): the connection's descriptor, and the
// errno.
func (h *host) accept(l uint32, flags uint16) (uint32, errno) {
	h.t.Helper()
	out := h.alloc(4)
	e := h.call("sock_accept", l, flags, out)
	return h.u32(out), e
}

// connect dials a peer to listener l (at addr) and accepts it: the
// guest's descriptor of the connection, and the peer.
func (h *host) connect(l uint32, addr string, flags uint16) (uint32, *net.TCPConn) {
	h.t.Helper()
	peer := dial(h.t, addr)
	fd, e := h.accept(l, flags)
	if e != errnoSuccess {
		h.t.Fatalf("sock_accept(%d): %s", l, errnoName(e))
	}
	return fd, peer
}

// recv is sock_recv(fd) into a buffer of n bytes with ri_flags flags:
// what it got, its ro_flags, and the errno.
func (h *host) recv(fd, n uint32, flags uint16) (string, uint16, errno) {
	h.t.Helper()
	vecs, cnt, bufs := h.iovecs(n)
	out, roflags := h.alloc(4), h.alloc(2)
	must.True(h.t, h.mem.WriteUint16Le(roflags, 0xffff))
	e := h.call("sock_recv", fd, vecs, cnt, flags, out, roflags)
	if e != errnoSuccess {
		return "", 0, e
	}
	ro, _ := h.mem.ReadUint16Le(roflags)
	return string(h.bytes(bufs[0], h.u32(out))), ro, e
}

// send is sock_send(fd) of the pieces: the count sent, and the errno.
func (h *host) send(fd uint32, pieces ...string) (uint32, errno) {
	h.t.Helper()
	vecs, n := h.ciovecs(pieces...)
	out := h.alloc(4)
	e := h.call("sock_send", fd, vecs, n, 0, out)
	return h.u32(out), e
}

// hostFD is the host's descriptor of socket descriptor fd.
func (h *host) hostFD(fd uint32) int { return h.in.table.fds[fd].sock.fd }

// readPeer reads from the peer until it has n bytes or its end.
func readPeer(t *testing.T, peer *net.TCPConn, n int) (string, error) {
	t.Helper()
	must.NoError(t, peer.SetReadDeadline(time.Now().Add(10*time.Second)))
	b := make([]byte, n)
	k, err := io.ReadFull(peer, b)
	return string(b[:k]), err
}

// peerSeesEOF fails the test unless the peer's next read finds its end
// (within 10 seconds: at once, for a close).
func peerSeesEOF(t *testing.T, peer *net.TCPConn, what string) {
	t.Helper()
	must.NoError(t, peer.SetReadDeadline(time.Now().Add(10*time.Second)))
	n, err := peer.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("%s: the peer read %d bytes, %v; want the end of the stream", what, n, err)
	}
}

// TestSockAccept: sock_accept takes a connection on a granted listener,
// waiting for one unless the listener is non-blocking (EAGAIN then); the
// connection is a socket stream with the flags asked for. Only a listener
// accepts, and only known flags.
func TestSockAccept(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")
	l, addr := h.listen()
	must.Eq(t, m.fd+1, l)
	st := h.mustFdstat(l)
	must.Eq(t, fdstat{filetype: filetypeSocketStream, base: rightsListener}, st)
	fst, e := h.fdFilestat(l)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, filetypeSocketStream, fst.filetype)

	// Blocking: it waits for the peer that comes.
	out := h.alloc(4)
	done := h.start(h.ctx(), "sock_accept", l, 0, out)
	peer := dial(t, addr)
	o := await(t, done, "a blocking sock_accept")
	must.NoError(t, o.err)
	must.Eq(t, errnoName(errnoSuccess), errnoName(o.errno))
	conn := h.u32(out)
	must.Eq(t, fdstat{filetype: filetypeSocketStream, base: rightsSocket}, h.mustFdstat(conn))
	_, err := peer.Write([]byte("hi"))
	must.NoError(t, err)
	got, _, e := h.recv(conn, 10, 0)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, "hi", got)

	// Non-blocking: EAGAIN until a peer comes.
	h.expect(errnoSuccess, "fd_fdstat_set_flags", l, uint16(fdflagNonblock))
	_, e = h.accept(l, 0)
	must.Eq(t, errnoName(errnoAgain), errnoName(e))
	dial(t, addr)
	h.pollUntilReady(l, eventFdRead)
	nb, e := h.accept(l, fdflagNonblock)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, uint16(fdflagNonblock), h.mustFdstat(nb).flags, must.Sprint("the connection has the flags asked for"))
	_, e = h.accept(l, 0)
	must.Eq(t, errnoName(errnoAgain), errnoName(e))

	file := h.mustOpen(m.fd, 0, "file", 0, rightFdRead, 0, 0)
	for _, tc := range []struct {
		fd    uint32
		flags uint16
		want  errno
	}{
		{file, 0, errnoNotsock},
		{1, 0, errnoNotsock},
		{m.fd, 0, errnoNotsock},
		{99, 0, errnoBadf},
		{conn, 0, errnoNotcapable}, // a connection: no right to accept (or EINVAL)
		{l, fdflagAppend, errnoInval},
	} {
		_, e := h.accept(tc.fd, tc.flags)
		if e != tc.want && (tc.fd != conn || e != errnoInval) {
			t.Errorf("sock_accept(%d, %d): %s, want %s", tc.fd, tc.flags, errnoName(e), errnoName(tc.want))
		}
	}
	// Without the right to accept.
	h.expect(errnoSuccess, "fd_fdstat_set_rights", l, rightsListener&^rightSockAccept, uint64(0))
	_, e = h.accept(l, 0)
	must.Eq(t, errnoName(errnoNotcapable), errnoName(e))
}

// TestSockAcceptResultOutsideMemory: a connection accepted for a result
// pointer outside the guest's memory is EFAULT, and leaves nothing in the
// table: the guest cannot know its number, nor ever close it.
func TestSockAcceptResultOutsideMemory(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	l, addr := h.listen()
	dial(t, addr)
	before := h.in.table.Len()
	h.expect(errnoFault, "sock_accept", l, 0, pageSize-3)
	if after := h.in.table.Len(); after != before {
		t.Fatalf("BUG sock_accept: EFAULT for its result pointer, yet the connection stays in the table "+
			"(%d descriptors before, %d after), unreachable by the guest: check the result pointer before accepting, or remove it", before, after)
	}
}

// TestSockRecvSend: sock_recv and sock_send (and fd_read and fd_write) move
// data on a connection, across several buffers; a peek leaves the data;
// a non-blocking connection without data is EAGAIN; a blocking send waits
// for room, which the peer's reading makes.
func TestSockRecvSend(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	l, addr := h.listen()
	conn, peer := h.connect(l, addr, 0)

	_, err := peer.Write([]byte("ping"))
	must.NoError(t, err)
	vecs, cnt, bufs := h.iovecs(2, 10)
	out, roflags := h.alloc(4), h.alloc(2)
	must.True(t, h.mem.WriteUint16Le(roflags, 0xffff))
	h.pollUntilReady(conn, eventFdRead)
	// A peek: one buffer filled, the data left.
	h.expect(errnoSuccess, "sock_recv", conn, vecs, cnt, riflagRecvPeek, out, roflags)
	must.Eq(t, uint32(2), h.u32(out))
	must.Eq(t, "pi", string(h.bytes(bufs[0], 2)))
	h.expect(errnoSuccess, "sock_recv", conn, vecs, cnt, riflagWaitall, out, roflags)
	must.Eq(t, uint32(4), h.u32(out))
	must.Eq(t, "pi", string(h.bytes(bufs[0], 2)))
	must.Eq(t, "ng", string(h.bytes(bufs[1], 2)))
	ro, _ := h.mem.ReadUint16Le(roflags)
	must.Eq(t, uint16(0), ro, must.Sprint("ro_flags"))

	n, e := h.send(conn, "po", "ng")
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, uint32(4), n)
	got, err := readPeer(t, peer, 4)
	must.NoError(t, err)
	must.Eq(t, "pong", got)

	// fd_read and fd_write are the same on a socket.
	_, e = h.write(conn, "via fd_write")
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	got, err = readPeer(t, peer, len("via fd_write"))
	must.NoError(t, err)
	must.Eq(t, "via fd_write", got)
	_, err = peer.Write([]byte("via fd_read"))
	must.NoError(t, err)
	got, e = h.read(conn, 100)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, "via fd_read", got)

	// A blocking recv waits for the data.
	vecs, cnt, bufs = h.iovecs(10)
	done := h.start(h.ctx(), "sock_recv", conn, vecs, cnt, 0, out, roflags)
	_, err = peer.Write([]byte("later"))
	must.NoError(t, err)
	o := await(t, done, "a blocking sock_recv")
	must.NoError(t, o.err)
	must.Eq(t, errnoName(errnoSuccess), errnoName(o.errno))
	must.Eq(t, "later", string(h.bytes(bufs[0], h.u32(out))))

	// Non-blocking: EAGAIN without data, on recv and fd_read alike.
	h.expect(errnoSuccess, "fd_fdstat_set_flags", conn, uint16(fdflagNonblock))
	_, _, e = h.recv(conn, 10, 0)
	must.Eq(t, errnoName(errnoAgain), errnoName(e))
	_, e = h.read(conn, 10)
	must.Eq(t, errnoName(errnoAgain), errnoName(e))

	// Non-blocking: EAGAIN once the socket's buffers are full.
	must.NoError(t, unix.SetsockoptInt(h.hostFD(conn), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096))
	must.NoError(t, peer.SetReadBuffer(4096))
	big := strings.Repeat("x", 16384)
	sent := 0
	for i := 0; ; i++ {
		if i == 10000 {
			t.Fatal("a non-blocking send never filled the socket")
		}
		n, e := h.send(conn, big)
		if e == errnoAgain {
			break
		}
		must.Eq(t, errnoName(errnoSuccess), errnoName(e))
		sent += int(n)
	}
	// Blocking again, a send waits until the peer reads.
	h.expect(errnoSuccess, "fd_fdstat_set_flags", conn, uint16(0))
	vecs, cnt = h.ciovecs(big)
	done = h.start(h.ctx(), "sock_send", conn, vecs, cnt, 0, out)
	got, err = readPeer(t, peer, sent)
	must.NoError(t, err)
	must.Eq(t, sent, len(got))
	o = await(t, done, "a blocking sock_send")
	must.Eq(t, errnoName(errnoSuccess), errnoName(o.errno))
	must.Positive(t, h.u32(out))
}

// TestSockErrors: the socket functions on what is not a connection, with
// flags they do not know, or with memory outside the guest's.
func TestSockErrors(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")
	l, addr := h.listen()
	conn, _ := h.connect(l, addr, 0)
	file := h.mustOpen(m.fd, 0, "file", 0, rightsRW, 0, 0)
	out, roflags := h.alloc(4), h.alloc(2)
	vecs, cnt, _ := h.iovecs(4)

	for _, fd := range []uint32{file, m.fd, 0, 1} {
		h.expect(errnoNotsock, "sock_recv", fd, vecs, cnt, 0, out, roflags)
		h.expect(errnoNotsock, "sock_send", fd, vecs, cnt, 0, out)
		h.expect(errnoNotsock, "sock_shutdown", fd, sdflagWr)
	}
	h.expect(errnoBadf, "sock_recv", 99, vecs, cnt, 0, out, roflags)
	h.expect(errnoBadf, "sock_send", 99, vecs, cnt, 0, out)
	h.expect(errnoBadf, "sock_shutdown", 99, sdflagWr)
	// A listener neither sends nor receives.
	h.expect(errnoNotcapable, "sock_recv", l, vecs, cnt, 0, out, roflags)
	h.expect(errnoNotcapable, "sock_send", l, vecs, cnt, 0, out)
	oneOf(t, h.call("sock_shutdown", l, sdflagWr), "sock_shutdown of a listener", errnoNotcapable, errnoNotconn)

	h.expect(errnoInval, "sock_recv", conn, vecs, cnt, 4, out, roflags)
	h.expect(errnoInval, "sock_send", conn, vecs, cnt, 1, out)
	h.expect(errnoInval, "sock_shutdown", conn, 0)
	h.expect(errnoInval, "sock_shutdown", conn, 4)
	h.expect(errnoFault, "sock_send", conn, pageSize-4, 1, 0, out)
	h.expect(errnoFault, "sock_recv", conn, pageSize-4, 1, 0, out, roflags)

	// Without their rights.
	h.expect(errnoSuccess, "fd_fdstat_set_rights", conn, rightsSocket&^(rightFdRead|rightSockShutdown), uint64(0))
	h.expect(errnoNotcapable, "sock_recv", conn, vecs, cnt, 0, out, roflags)
	h.expect(errnoNotcapable, "sock_shutdown", conn, sdflagWr)
}

// TestSockReset: a peer's reset wakes a poll_oneoff waiting on the
// connection, which reports it with the hangup flag, and is ECONNRESET on
// the guest's recv; a blocking recv waiting when it comes is woken.
func TestSockReset(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	l, addr := h.listen()
	conn, peer := h.connect(l, addr, 0)
	c := h.pollArgs(fdSub(1, eventFdRead, conn))
	done := h.start(h.ctx(), "poll_oneoff", c.args()...)
	must.NoError(t, peer.SetLinger(0))
	must.NoError(t, peer.Close())
	o := await(t, done, "poll_oneoff on a connection reset")
	must.Eq(t, errnoName(errnoSuccess), errnoName(o.errno))
	expectEvents(t, []event{{1, 0, eventFdRead}}, c.events(), "a connection reset")
	if h.u32(c.nevents) == 1 {
		flags, _ := h.mem.ReadUint16Le(c.out + 24)
		must.Eq(t, uint16(eventFdHangup), flags, must.Sprint("the event's flags"))
	}
	_, _, e := h.recv(conn, 10, 0)
	must.Eq(t, errnoName(errnoConnreset), errnoName(e))

	conn2, peer2 := h.connect(l, addr, 0)
	vecs, cnt, _ := h.iovecs(8)
	done = h.start(h.ctx(), "sock_recv", conn2, vecs, cnt, 0, h.alloc(4), h.alloc(2))
	must.NoError(t, peer2.SetLinger(0))
	must.NoError(t, peer2.Close())
	o = await(t, done, "a blocking sock_recv on a connection reset")
	must.Eq(t, errnoName(errnoConnreset), errnoName(o.errno))
}

// TestSockShutdown: a half-close. The guest's sock_shutdown(WR) ends what
// the peer reads, and leaves the guest reading what the peer still sends,
// then 0 once the peer shuts its own side; a send after its own shutdown
// is EPIPE (and no signal ends the process).
func TestSockShutdown(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	l, addr := h.listen()
	conn, peer := h.connect(l, addr, 0)

	h.send(conn, "bye")
	h.expect(errnoSuccess, "sock_shutdown", conn, sdflagWr)
	must.NoError(t, peer.SetReadDeadline(time.Now().Add(10*time.Second)))
	all, err := io.ReadAll(peer)
	must.NoError(t, err)
	must.Eq(t, "bye", string(all), must.Sprint("the peer reads what was sent, then the end"))

	_, err = peer.Write([]byte("still"))
	must.NoError(t, err)
	got, _, e := h.recv(conn, 10, 0)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, "still", got)
	must.NoError(t, peer.CloseWrite())
	got, _, e = h.recv(conn, 10, 0)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, "", got, must.Sprint("a recv after the peer's shutdown"))
	got, e = h.read(conn, 10)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, "", got, must.Sprint("an fd_read after the peer's shutdown"))

	_, e = h.send(conn, "more")
	must.Eq(t, errnoName(errnoPipe), errnoName(e))

	// Both ways, on another connection.
	conn2, peer2 := h.connect(l, addr, 0)
	h.expect(errnoSuccess, "sock_shutdown", conn2, sdflagRd|sdflagWr)
	peerSeesEOF(t, peer2, "after sock_shutdown(RD|WR)")
}

// TestSockClose: closing a socket closes it at once, by fd_close or by
// the table's end (the instance's): the peer of a connection reads its
// end, and a listener no longer takes connections.
func TestSockClose(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	l, addr := h.listen()
	conn, peer := h.connect(l, addr, 0)
	conn2, peer2 := h.connect(l, addr, 0)

	h.expect(errnoSuccess, "fd_close", conn)
	peerSeesEOF(t, peer, "after fd_close")
	h.expect(errnoBadf, "sock_recv", conn, 0, 0, 0, h.alloc(4), h.alloc(2))

	h.expect(errnoSuccess, "fd_close", l)
	_, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("a dial to a listener closed: %v, want it refused", err)
	}

	h.in.table.Close()
	must.Eq(t, 0, h.in.table.Len())
	peerSeesEOF(t, peer2, "after the table's Close")
	_ = conn2
}
