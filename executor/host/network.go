// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/wasi"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/outbound"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// noticeGap is the least time between two events about one destination,
// and maxNoticed bounds the destinations remembered for it.
const (
	noticeGap  = time.Minute
	maxNoticed = 256
	maxNotices = 64
)

// taskNetwork is a task's way out (wasi.Network), shared by all its
// instances: its outbound policy, its resolver, where its sockets are made
// (the allocation's network namespace, through a thread that stays in it),
// and what it reports: counters, and a task event per refused destination
// (at most one a minute each).
type taskNetwork struct {
	policy   *outbound.Policy
	ns       *nsThread // nil: the executor's own namespace
	resolver *net.Resolver
	searches []string
	logger   hclog.Logger

	opened, refused atomic.Uint64

	// more is signalled when a notice is queued (Notices waits on it).
	more chan struct{}

	mu       sync.Mutex
	noticed  map[string]time.Time // destination → last event
	notices  []*proto.Notice      // not yet sent
	noticesN int                  // dropped for want of room
}

var _ wasi.Network = (*taskNetwork)(nil)

// newTaskNetwork makes a task's way out from its start request; in bridge
// mode its namespace thread enters the allocation's namespace now, while
// the executor still may. Its errors are classified.
func newTaskNetwork(o *proto.Outbound, netns string, logger hclog.Logger) (*taskNetwork, error) {
	n := &taskNetwork{policy: &outbound.Policy{}, logger: logger, noticed: map[string]time.Time{}, more: make(chan struct{}, 1)}
	if o != nil {
		var err error
		if n.policy.Job, err = outbound.ParseRules("outbound", o.Rules); err != nil {
			return nil, executor.JobErrorf("%v", err)
		}
		if n.policy.Operator, err = outbound.ParseRules("the plugin config's outbound.allow", o.Allow); err != nil {
			return nil, executor.OperatorErrorf("%v", err)
		}
		if n.policy.Deny, err = outbound.ParseNetworks(o.DenyNetworks); err != nil {
			return nil, executor.OperatorErrorf("%v", err)
		}
		n.searches = o.DnsSearches
	}
	if n.policy.Empty() {
		// Nothing is allowed: no thread, no resolver; sock_open still
		// works, and each connect is refused and reported.
		return n, nil
	}
	if netns != "" {
		ns, err := newNSThread(netns)
		if err != nil {
			return nil, executor.NodeErrorf("outbound connections: %v", err)
		}
		n.ns = ns
	}
	var servers []string
	if o != nil {
		for _, s := range o.DnsServers {
			if _, _, err := net.SplitHostPort(s); err != nil {
				s = net.JoinHostPort(strings.Trim(s, "[]"), "53")
			}
			servers = append(servers, s)
		}
	}
	var next atomic.Uint32
	n.resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		if len(servers) > 0 {
			address = servers[int(next.Add(1))%len(servers)]
		}
		return n.dial(ctx, network, address)
	}}
	return n, nil
}

// close ends the namespace thread.
func (n *taskNetwork) close() {
	if n != nil && n.ns != nil {
		n.ns.close()
	}
}

// Socket makes a TCP socket, non-blocking and close-on-exec, in the task's
// namespace.
func (n *taskNetwork) Socket(family int) (int, error) {
	return n.socket(family, unix.SOCK_STREAM)
}

func (n *taskNetwork) socket(family, typ int) (int, error) {
	if n.ns == nil {
		return newSocket(family, typ)
	}
	var fd int
	var err error
	n.ns.do(func() { fd, err = newSocket(family, typ) })
	return fd, err
}

// dial connects to a name server, from the task's namespace.
func (n *taskNetwork) dial(ctx context.Context, network, address string) (net.Conn, error) {
	if n.ns == nil {
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("name server %s: %w", address, err)
	}
	family, typ := unix.AF_INET, unix.SOCK_DGRAM
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		family = unix.AF_INET6
	}
	if strings.HasPrefix(network, "tcp") {
		typ = unix.SOCK_STREAM
	}
	fd, err := n.socket(family, typ)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "dns")
	defer f.Close()
	sa, _ := sockaddrOfAddrPort(ap, family)
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
		return nil, err
	}
	return net.FileConn(f)
}

// sockaddrOfAddrPort is ap for a socket of family.
func sockaddrOfAddrPort(ap netip.AddrPort, family int) (unix.Sockaddr, error) {
	if family == unix.AF_INET6 {
		return &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}, nil
	}
	return &unix.SockaddrInet4{Addr: ap.Addr().Unmap().As4(), Port: int(ap.Port())}, nil
}

// Resolve resolves name for the guest, if its rules let it.
func (n *taskNetwork) Resolve(ctx context.Context, name string) ([]netip.Addr, error) {
	if !n.policy.MayResolve(name) {
		n.notice("resolve "+name, fmt.Sprintf("Outbound: the guest's lookup of %s was refused: no outbound rule of the task's (and the operator's) names it; add one to the task config's outbound, e.g. \"tcp://%s:<port>\"", name, name))
		return nil, wasi.ErrNotAllowed
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// The task's search domains first, for a single-label name; then the
	// name as given (the node's hosts file answers it: localhost).
	var candidates []string
	if !strings.Contains(strings.TrimSuffix(name, "."), ".") && !strings.HasSuffix(name, ".") {
		for _, s := range n.searches {
			candidates = append(candidates, name+"."+strings.TrimSuffix(s, ".")+".")
		}
	}
	candidates = append(candidates, name)
	var err error
	for _, c := range candidates {
		var addrs []netip.Addr
		if addrs, err = n.resolver.LookupNetIP(ctx, "ip", c); err == nil && len(addrs) > 0 {
			return addrs, nil
		}
	}
	return nil, err
}

// Allow checks a connect against the policy, counts it, and reports a
// refusal.
func (n *taskNetwork) Allow(addr netip.AddrPort, names []string) bool {
	ok, why := n.policy.Allow(addr.Addr(), addr.Port(), names)
	if ok {
		n.opened.Add(1)
		return true
	}
	n.refused.Add(1)
	dest := addr.String()
	if len(names) > 0 {
		dest += " (" + strings.Join(names, ", ") + ")"
	}
	hint := fmt.Sprintf("tcp://%s:%d", addr.Addr(), addr.Port())
	if addr.Addr().Is6() {
		hint = fmt.Sprintf("tcp://[%s]:%d", addr.Addr(), addr.Port())
	}
	if len(names) > 0 {
		hint = fmt.Sprintf("tcp://%s:%d", names[0], addr.Port())
	}
	n.notice(addr.String(), fmt.Sprintf("Outbound: connection to %s refused (EACCES): %s; a rule such as %q in the task config's outbound allows it, within the node operator's outbound.allow", dest, why, hint))
	return false
}

// notice queues a task event about key, unless one went out within
// noticeGap, and logs it.
func (n *taskNetwork) notice(key, msg string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := time.Now()
	if last, ok := n.noticed[key]; ok && now.Sub(last) < noticeGap {
		return
	}
	if len(n.noticed) >= maxNoticed {
		for k, t := range n.noticed {
			if now.Sub(t) >= noticeGap {
				delete(n.noticed, k)
			}
		}
		if len(n.noticed) >= maxNoticed {
			return
		}
	}
	n.noticed[key] = now
	n.logger.Warn(msg, "opened", n.opened.Load(), "refused", n.refused.Load())
	if len(n.notices) >= maxNotices {
		n.noticesN++
		return
	}
	n.notices = append(n.notices, &proto.Notice{Message: msg, Annotations: map[string]string{"destination": key}})
	select {
	case n.more <- struct{}{}:
	default:
	}
}

// takeNotices hands over the notices not yet sent.
func (n *taskNetwork) takeNotices() []*proto.Notice {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.notices
	n.notices = nil
	if n.noticesN > 0 {
		out = append(out, &proto.Notice{Message: fmt.Sprintf("Outbound: %d more refused destinations were not reported (see the task's executor log)", n.noticesN)})
		n.noticesN = 0
	}
	return out
}

// counts are the task's outbound connections opened and refused.
func (n *taskNetwork) counts() (opened, refused uint64) {
	if n == nil {
		return 0, 0
	}
	return n.opened.Load(), n.refused.Load()
}
