// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// guestSockets are one instance's sockets: the listeners bound for it and
// the connections accepted on them. wazero keeps a guest's sockets to
// itself, so they are found among the process's descriptors; in the
// shared executor those are every task's, and two tasks in different
// network namespaces (bridge networking) may hold the same address and
// port. So the listeners are recorded as they are bound, by descriptor and
// socket inode (recordListeners), and a connection is the instance's only
// if it has one of its listeners' local address in the same network
// namespace: a listening address is one socket's in a namespace, and the
// kernel never gives a listener's port to an outgoing connection there.
//
// The namespace is told by its cookie (SO_NETNS_COOKIE, Linux 5.14). A
// kernel without it cannot tell two namespaces' connections apart: where
// another instance of the process has a listener on the same port, a
// connection on it is then polled (a wake-up by the neighbour's is
// spurious, which poll_oneoff allows) but never shut down.
//
// This stands until the instance keeps a descriptor table of its own.
type guestSockets struct {
	listeners []boundListener
	once      sync.Once // forgets the listeners (release)
}

// boundListener is a listener bound for an instance.
type boundListener struct {
	fd    int
	inode uint64
	ip    net.IP // as bound; unspecified: every address
	port  int
	// netns is the cookie of its network namespace, 0 where the kernel
	// has none.
	netns uint64
}

// guestListeners are the listeners of every instance of the process, by
// socket inode, with their ports: a listener is one instance's, and a
// port held by two is ambiguous without namespace cookies.
var guestListeners = struct {
	sync.Mutex
	port map[uint64]int
}{port: map[uint64]int{}}

// openSockets lists the socket inodes the process holds: what was open
// before an instance's listeners were bound (see recordListeners).
func openSockets() map[uint64]bool {
	inodes := map[uint64]bool{}
	for _, fd := range openFDs() {
		if ino, ok := socketInode(fd); ok {
			inodes[ino] = true
		}
	}
	return inodes
}

// recordListeners finds the listeners just bound for an instance that was
// granted ls: the TCP sockets listening on one of ls's addresses that the
// process did not hold before (a set openSockets made) and that no other
// instance claims. Starts, which bind, are one at a time.
func recordListeners(before map[uint64]bool, ls []*proto.Listener) *guestSockets {
	g := &guestSockets{}
	guestListeners.Lock()
	defer guestListeners.Unlock()
	for _, fd := range openFDs() {
		ino, ok := socketInode(fd)
		if !ok || before[ino] {
			continue
		}
		if _, claimed := guestListeners.port[ino]; claimed {
			continue
		}
		if on, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || on == 0 {
			continue
		}
		ip, port, ok := localAddress(fd)
		if !ok || !granted(ls, ip, port) {
			continue
		}
		cookie, _ := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
		g.listeners = append(g.listeners, boundListener{fd: fd, inode: ino, ip: ip, port: port, netns: cookie})
		guestListeners.port[ino] = port
	}
	return g
}

// granted says whether a listener on ip:port is one of ls.
func granted(ls []*proto.Listener, ip net.IP, port int) bool {
	for _, l := range ls {
		lip := net.ParseIP(l.Address)
		if int(l.Port) == port && (lip == nil || lip.IsUnspecified() || lip.Equal(ip)) {
			return true
		}
	}
	return false
}

// release forgets the instance's listeners, once its stop has shut them
// down or it has ended.
func (g *guestSockets) release() {
	g.once.Do(func() {
		guestListeners.Lock()
		defer guestListeners.Unlock()
		for _, l := range g.listeners {
			delete(guestListeners.port, l.inode)
		}
	})
}

// shutdown shuts down the instance's sockets. That wakes a guest blocked
// in accept or in a read on one of them: the host call returns an error,
// and the stopped guest ends at its next step.
func (g *guestSockets) shutdown() {
	for _, fd := range g.fds(true) {
		_ = unix.Shutdown(fd, unix.SHUT_RDWR)
	}
}

// poll waits up to timeout for one of the instance's sockets to be ready
// to read (or, with write, to write), and says whether one is.
func (g *guestSockets) poll(write bool, timeout time.Duration) bool {
	fds := g.fds(false)
	if len(fds) == 0 {
		time.Sleep(timeout)
		return false
	}
	events := int16(unix.POLLIN)
	if write {
		events |= unix.POLLOUT
	}
	pfds := make([]unix.PollFd, len(fds))
	for i, fd := range fds {
		pfds[i] = unix.PollFd{Fd: int32(fd), Events: events}
	}
	n, err := unix.Poll(pfds, int(timeout.Milliseconds()))
	return err != nil || n > 0
}

// fds returns the descriptors of the instance's listeners that are still
// open and of the connections accepted on them; for a shutdown, not those
// that may be another instance's (see guestSockets).
func (g *guestSockets) fds(shutdown bool) []int {
	var fds []int
	mine := map[int]bool{}
	for _, l := range g.listeners {
		if ino, ok := socketInode(l.fd); ok && ino == l.inode {
			fds = append(fds, l.fd)
			mine[l.fd] = true
		}
	}
	if len(fds) == 0 {
		return nil
	}
	for _, fd := range openFDs() {
		if mine[fd] {
			continue
		}
		if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_STREAM {
			continue
		}
		ip, port, ok := localAddress(fd)
		if !ok {
			continue
		}
		for _, l := range g.listeners {
			if l.port == port && (l.ip.IsUnspecified() || l.ip.Equal(ip)) && l.holds(fd, shutdown) {
				fds = append(fds, fd)
				break
			}
		}
	}
	return fds
}

// holds says whether fd, a TCP socket with l's local address that is not
// l, is a connection accepted on l; with sure, only if it cannot be
// another instance's.
func (l boundListener) holds(fd int, sure bool) bool {
	if on, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || on != 0 {
		return false // another namespace's listener
	}
	if l.netns != 0 {
		cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
		return err == nil && cookie == l.netns
	}
	if !sure {
		return true
	}
	guestListeners.Lock()
	defer guestListeners.Unlock()
	for ino, port := range guestListeners.port {
		if port == l.port && ino != l.inode {
			return false
		}
	}
	return true
}

// openFDs lists the process's open descriptors.
func openFDs() []int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	fds := make([]int, 0, len(entries))
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil {
			fds = append(fds, fd)
		}
	}
	return fds
}

// socketInode returns the inode of the socket fd, if it is one.
func socketInode(fd int) (uint64, bool) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return 0, false
	}
	return st.Ino, true
}

// localAddress returns the local IP address and port of the socket fd, if
// it is an internet one.
func localAddress(fd int) (net.IP, int, bool) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, 0, false
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return net.IP(a.Addr[:]), a.Port, true
	case *unix.SockaddrInet6:
		return net.IP(a.Addr[:]), a.Port, true
	}
	return nil, 0, false
}
