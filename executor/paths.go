// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// Mount maps a host directory into the guest's view.
type Mount struct {
	// GuestPath is where the guest sees the directory, e.g. "/local".
	GuestPath string
	// HostPath is the directory on the node.
	HostPath string
	// ReadOnly makes every write through the mount fail with EROFS.
	ReadOnly bool
}

// ResolveGuestPath finds the mount that holds p, a path in the guest's view,
// and returns it with p's path relative to that mount. p may be absolute
// ("/local/app.wasm") or relative to the guest's working directory, which is
// "/" ("local/app.wasm"). It rejects ".." and anything outside every mount;
// symlinks are resolved later, when the file is opened through the mount.
func ResolveGuestPath(mounts []Mount, p string) (Mount, string, error) {
	if p == "" {
		return Mount{}, "", fmt.Errorf("path is empty")
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == ".." {
			return Mount{}, "", fmt.Errorf("path %q must not contain \"..\": name a file inside the task's view, for example local/app.wasm", p)
		}
	}
	clean := path.Clean("/" + p)
	for _, m := range mounts {
		if clean == m.GuestPath {
			return m, ".", nil
		}
		if rel, ok := strings.CutPrefix(clean, m.GuestPath+"/"); ok {
			return m, rel, nil
		}
	}
	return Mount{}, "", fmt.Errorf("path %q is outside the task's view (%s): the guest sees only those directories, so name the file inside one of them, for example local/app.wasm where an artifact block downloads it", p, guestRoots(mounts))
}

func guestRoots(mounts []Mount) string {
	roots := make([]string, len(mounts))
	for i, m := range mounts {
		roots[i] = m.GuestPath
	}
	return strings.Join(roots, ", ")
}

// ListenerEnv is the environment variable that tells a guest the file
// descriptor of the listener granted under a port label: WASM_LISTENER_
// and the label upper-cased, with every character other than a letter or
// a digit made an underscore ("http-admin" gives WASM_LISTENER_HTTP_ADMIN).
func ListenerEnv(label string) string {
	b := []byte(strings.ToUpper(label))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	return "WASM_LISTENER_" + string(b)
}

// ListenerAddress is the host:port a listener is bound to.
func ListenerAddress(l *proto.Listener) string {
	return net.JoinHostPort(l.Address, strconv.Itoa(int(l.Port)))
}
