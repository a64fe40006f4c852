// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero/api"
	"golang.org/x/sys/unix"
)

// WASI preview 1 values of the sock_ functions.
const (
	riflagRecvPeek = 1
	riflagWaitall  = 2
	sdflagRd       = 1
	sdflagWr       = 2
)

// Socket is a TCP socket of a guest's: a listener granted to it, or a
// connection accepted on one. Its descriptor is the host's own,
// non-blocking whatever the guest asks (a guest's blocking call waits in
// poll, where a stop wakes it), and closed as soon as the guest closes it.
type Socket struct {
	fd       int
	listener bool
	// outbound: the guest opened it (sock_open), to connect out; family
	// is its address family (unix.AF_INET or AF_INET6).
	outbound bool
	family   int
	// rcvTimeout and sndTimeout bound a blocking receive or send
	// (SO_RCVTIMEO, SO_SNDTIMEO); 0: no bound.
	rcvTimeout, sndTimeout time.Duration
}

// Listen binds a TCP listener on address ("host:port"; an empty host is
// every address) for a guest, in the calling thread's network namespace.
// It is the caller's until it is added to a table (AddListener).
func Listen(address string) (*Socket, error) {
	l, err := net.Listen("tcp", address)
	if err != nil {
		return nil, err
	}
	defer func() { _ = l.Close() }()
	raw, err := l.(*net.TCPListener).SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) { fd, dupErr = dupCloexec(int(s)) }); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Err: dupErr}
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return &Socket{fd: fd, listener: true}, nil
}

// Close closes the socket.
func (s *Socket) Close() error { return s.close() }

func (s *Socket) close() error {
	if s.fd < 0 {
		return nil
	}
	err := unix.Close(s.fd)
	s.fd = -1
	return err
}

// Addr is the socket's local address.
func (s *Socket) Addr() (net.Addr, error) {
	sa, err := unix.Getsockname(s.fd)
	if err != nil {
		return nil, err
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}, nil
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(a.Addr[:]), Port: a.Port}, nil
	}
	return nil, fmt.Errorf("socket %d: not an internet socket", s.fd)
}

// AddListener adds a granted listener to the table and returns its
// descriptor. The table owns it from then on.
func (t *Table) AddListener(s *Socket) uint32 {
	return t.insert(&descriptor{filetype: filetypeSocketStream, base: rightsListener, sock: s})
}

// socketOf is descriptor fd, which must be a socket (ENOTSOCK) with the
// rights needed.
func (t *Table) socketOf(fd uint32, needed uint64) (*descriptor, errno) {
	d, e := t.lookup(fd, 0)
	if e != errnoSuccess {
		return nil, e
	}
	if d.sock == nil {
		return nil, errnoNotsock
	}
	if d.base&needed != needed {
		return nil, errnoNotcapable
	}
	return d, errnoSuccess
}

// sockAcceptV1 is WasmEdge 0.11's sock_accept(fd, result.fd).
func sockAcceptV1(ctx context.Context, mod api.Module, stack []uint64) {
	accept(ctx, mod, stack, uint32(stack[0]), 0, uint32(stack[1]))
}

// sockAccept is WASI's sock_accept(fd, flags, result.fd).
func sockAccept(ctx context.Context, mod api.Module, stack []uint64) {
	accept(ctx, mod, stack, uint32(stack[0]), uint16(stack[1]), uint32(stack[2]))
}

func accept(ctx context.Context, mod api.Module, stack []uint64, fd uint32, flags uint16, result uint32) {
	t := table(ctx)
	d, e := t.socketOf(fd, rightSockAccept)
	switch {
	case e != errnoSuccess:
	case !d.sock.listener:
		e = errnoInval
	case flags&^fdflagNonblock != 0:
		e = errnoInval
	case t.full():
		e = errnoMfile
	}
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	for {
		nfd, err := acceptConn(d.sock.fd)
		if err == nil {
			conn := &descriptor{filetype: filetypeSocketStream, base: rightsSocket, flags: flags & fdflagNonblock, sock: &Socket{fd: nfd}}
			stack[0] = uint64(t.give(mod.Memory(), conn, result))
			return
		}
		if !errors.Is(err, unix.EAGAIN) || d.flags&fdflagNonblock != 0 {
			stack[0] = uint64(fromErr(err))
			return
		}
		t.wait(ctx, d.sock.fd, false, 0)
	}
}

// recv reads the socket into the iovecs: waiting, unless nonblock, until
// it has something (or its peer's end).
func (s *Socket) recv(ctx context.Context, t *Table, mem api.Memory, iovs, n uint32, flags uint16, nonblock bool) (uint32, errno) {
	for {
		var total uint32
		var failed error
		e := eachIovec(mem, iovs, n, func(b []byte) bool {
			if len(b) == 0 {
				return true
			}
			how := 0
			if flags&riflagRecvPeek != 0 {
				how |= unix.MSG_PEEK
			}
			k, _, err := unix.Recvfrom(s.fd, b, how)
			if err != nil {
				failed = err
				return false
			}
			total += uint32(k)
			// Only the first buffer of a peek is filled.
			return k == len(b) && flags&riflagRecvPeek == 0
		})
		switch {
		case e != errnoSuccess:
			return 0, e
		case total > 0 || failed == nil:
			return total, errnoSuccess
		case !errors.Is(failed, unix.EAGAIN) || nonblock:
			return 0, fromErr(failed)
		}
		if !t.wait(ctx, s.fd, false, s.rcvTimeout) {
			return 0, errnoAgain // SO_RCVTIMEO passed
		}
	}
}

// send writes the iovecs to the socket: waiting, unless nonblock, until
// it takes something.
func (s *Socket) send(ctx context.Context, t *Table, mem api.Memory, iovs, n uint32, nonblock bool) (uint32, errno) {
	for {
		var total uint32
		var failed error
		e := eachIovec(mem, iovs, n, func(b []byte) bool {
			if len(b) == 0 {
				return true
			}
			k, err := unix.Write(s.fd, b)
			if err != nil {
				failed = err
				return false
			}
			total += uint32(k)
			return k == len(b)
		})
		switch {
		case e != errnoSuccess:
			return 0, e
		case total > 0 || failed == nil:
			return total, errnoSuccess
		case !errors.Is(failed, unix.EAGAIN) || nonblock:
			return 0, fromErr(failed)
		}
		if !t.wait(ctx, s.fd, true, s.sndTimeout) {
			return 0, errnoAgain // SO_SNDTIMEO passed
		}
	}
}

// sockRecv is WASI's sock_recv(fd, ri_data, ri_data_len, ri_flags,
// result.ro_datalen, result.ro_flags).
func sockRecv(ctx context.Context, mod api.Module, stack []uint64) {
	fd, iovs, n, flags, result, roflags := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint16(stack[3]), uint32(stack[4]), uint32(stack[5])
	t, mem := table(ctx), mod.Memory()
	d, e := t.socketOf(fd, rightFdRead)
	if e == errnoSuccess && flags&^(riflagRecvPeek|riflagWaitall) != 0 {
		e = errnoInval
	}
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	got, e := d.sock.recv(ctx, t, mem, iovs, n, flags, d.flags&fdflagNonblock != 0)
	if e == errnoSuccess && !mem.WriteUint16Le(roflags, 0) {
		e = errnoFault
	}
	writeResult32(mem, stack, result, got, e)
}

// sockSend is WASI's sock_send(fd, si_data, si_data_len, si_flags,
// result.so_datalen).
func sockSend(ctx context.Context, mod api.Module, stack []uint64) {
	fd, iovs, n, flags, result := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint16(stack[3]), uint32(stack[4])
	t, mem := table(ctx), mod.Memory()
	d, e := t.socketOf(fd, rightFdWrite)
	if e == errnoSuccess && flags != 0 {
		e = errnoInval
	}
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	sent, e := d.sock.send(ctx, t, mem, iovs, n, d.flags&fdflagNonblock != 0)
	writeResult32(mem, stack, result, sent, e)
}

// sockShutdown is WASI's sock_shutdown(fd, how).
func sockShutdown(ctx context.Context, _ api.Module, stack []uint64) {
	fd, how := uint32(stack[0]), uint32(stack[1])
	d, e := table(ctx).socketOf(fd, rightSockShutdown)
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	var sh int
	switch how {
	case sdflagRd:
		sh = unix.SHUT_RD
	case sdflagWr:
		sh = unix.SHUT_WR
	case sdflagRd | sdflagWr:
		sh = unix.SHUT_RDWR
	default:
		stack[0] = errnoInval
		return
	}
	stack[0] = uint64(fromErr(unix.Shutdown(d.sock.fd, sh)))
}

// waker wakes a wait in poll when the instance is stopped: its read end
// is polled with the sockets waited for, and the stop writes to it.
type waker struct {
	r, w int
	stop func() bool
	// mu keeps a stop's write from a descriptor closed (and maybe reused)
	// under it.
	mu     sync.Mutex
	closed bool
}

// wakeOnStop makes, once, the table's waker for the stop of ctx (the
// instance's calls' context).
func (t *Table) wakeOnStop(ctx context.Context) (*waker, error) {
	var err error
	t.wakeOnce.Do(func() {
		var p [2]int
		if err = pipe(&p); err != nil {
			return
		}
		w := &waker{r: p[0], w: p[1]}
		w.stop = context.AfterFunc(ctx, w.wake)
		t.waker = w
	})
	if t.waker == nil && err == nil {
		err = errors.New("the instance's waker could not be made")
	}
	return t.waker, err
}

func (w *waker) wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		_, _ = unix.Write(w.w, []byte{1})
	}
}

func (w *waker) close() {
	w.stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	_ = unix.Close(w.r)
	_ = unix.Close(w.w)
}

// wait waits until fd is ready to read (or, with write, to write), or
// timeout passes (0: no bound), and says whether it is ready. A stop of
// the instance ends the guest.
func (t *Table) wait(ctx context.Context, fd int, write bool, timeout time.Duration) bool {
	events := int16(unix.POLLIN)
	if write {
		events = unix.POLLOUT
	}
	if timeout == 0 {
		timeout = -1
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: events}}
	n, err := t.poll(ctx, fds, timeout)
	return err != nil || n > 0 // an error: the next call finds it out
}

// poll waits until one of fds is ready, timeout passes (negative: no
// limit), or the instance is stopped, which ends the guest. It returns
// how many are ready.
func (t *Table) poll(ctx context.Context, fds []unix.PollFd, timeout time.Duration) (int, error) {
	endIfStopped(ctx)
	w, err := t.wakeOnStop(ctx)
	if err != nil {
		return 0, err
	}
	// The waker is polled with the caller's descriptors, in a slice of
	// the table's own: the kernel's answers are copied back to fds.
	t.polled = append(append(t.polled[:0], fds...), unix.PollFd{Fd: int32(w.r), Events: unix.POLLIN})
	defer copy(fds, t.polled)
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		n, err := pollFDs(t.polled, timeout)
		if errors.Is(err, syscall.EINTR) {
			if timeout >= 0 {
				timeout = max(0, time.Until(deadline))
			}
			continue
		}
		endIfStopped(ctx)
		if err != nil {
			return 0, err
		}
		return n, nil
	}
}
