// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"net/netip"
	"testing"
	"time"

	"github.com/shoenig/test/must"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"
)

// outboundSocket is a TCP socket of family, non-blocking and
// close-on-exec, as a Network makes it.
func outboundSocket(family int) (int, error) {
	return unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
}

// fullListener is a loopback listener whose queue of connections is
// full (a backlog of 0, one connection in it, never accepted): a SYN to
// it goes unanswered, so a connect to it stays in progress.
func fullListener(t *testing.T) netip.AddrPort {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	must.NoError(t, err)
	t.Cleanup(func() { _ = unix.Close(fd) })
	must.NoError(t, unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	must.NoError(t, unix.Listen(fd, 0))
	sa, err := unix.Getsockname(fd)
	must.NoError(t, err)
	addr := netip.AddrPortFrom(netip.AddrFrom4(sa.(*unix.SockaddrInet4).Addr), uint16(sa.(*unix.SockaddrInet4).Port))
	dial(t, addr.String())
	// A listener's tcpi_unacked is its queue's length.
	waitUntil(t, func() bool {
		info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		return err == nil && info.Unacked == 1
	}, "the listener's queue never held the connection")
	return addr
}

// TestSockConnectAlready: a second connect of a non-blocking socket
// still connecting is EALREADY (or EINPROGRESS), as POSIX says.
func TestSockConnectAlready(t *testing.T) {
	t.Parallel()
	h, _ := outboundHost(t, outboundImports)
	full := fullListener(t)
	fd := h.mustSockOpen(afInet4)
	h.expect(errnoSuccess, "fd_fdstat_set_flags", fd, uint16(fdflagNonblock))
	must.Eq(t, errnoName(errnoInprogress), errnoName(h.sockConnect(fd, full)))
	if e := h.sockConnect(fd, full); e != 7 && e != errnoInprogress {
		t.Errorf("BUG sock_connect: a second connect of a non-blocking socket still connecting to %s: %s (%d), want EALREADY (7) or EINPROGRESS (26): "+
			"the host's EALREADY goes through fromErr (errno.go), which does not map it and falls back to EIO", full, errnoName(e), e)
	}
}

// TestSockConnectTimeout: a blocking connect that does not complete
// within SO_SNDTIMEO fails (Linux: EINPROGRESS), and does not return
// success unconnected.
func TestSockConnectTimeout(t *testing.T) {
	t.Parallel()
	h, _ := outboundHost(t, outboundImports)
	full := fullListener(t)
	fd := h.mustSockOpen(afInet4)
	must.Eq(t, errnoName(errnoSuccess), errnoName(h.setTimeout(fd, soSndtimeo, 0, 50_000)))
	o := await(t, h.start(h.ctx(), "sock_connect", fd, h.wasiAddress(full.Addr().AsSlice()), full.Port()), "a blocking sock_connect with SO_SNDTIMEO")
	must.NoError(t, o.err)
	must.GreaterEq(t, 45*time.Millisecond, o.elapsed, must.Sprint("it returned before SO_SNDTIMEO"))
	if o.errno == errnoSuccess {
		_, _, pe := h.sockAddr(true, fd, 4)
		t.Errorf("BUG sock_connect: blocking, SO_SNDTIMEO 50ms, to %s whose SYNs go unanswered: SUCCESS after %v, yet not connected "+
			"(sock_getpeeraddr: %s); want EINPROGRESS (26), as Linux, or EAGAIN/ETIMEDOUT: t.wait's false (the timeout) is ignored and SO_ERROR, still 0, taken for success",
			full, o.elapsed.Round(time.Millisecond), errnoName(pe))
	}
}

// TestSockConnectStop: a blocking connect waiting for its answer is ended
// by the instance's stop, which ends the guest.
func TestSockConnectStop(t *testing.T) {
	t.Parallel()
	h, n := outboundHost(t, outboundImports)
	full := fullListener(t)
	fd := h.mustSockOpen(afInet4)
	done := h.start(h.ctx(), "sock_connect", fd, h.wasiAddress(full.Addr().AsSlice()), full.Port())
	host := n.made()[0].fd
	waitUntil(t, func() bool {
		info, err := unix.GetsockoptTCPInfo(host, unix.IPPROTO_TCP, unix.TCP_INFO)
		return err == nil && info.State == unix.BPF_TCP_SYN_SENT
	}, "the guest's socket never sent its SYN")
	h.in.stop()
	o := await(t, done, "a blocking sock_connect after the stop")
	must.Eq(t, int(sys.ExitCodeContextCanceled), exitCode(o.err), must.Sprintf("the guest's end: %v", o.err))
}
