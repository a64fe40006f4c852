// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"fmt"
	"os"
	"os/user"
	"strconv"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// The user a task runs as.
//
// When the Nomad client runs as root, an executor does what needs root
// first (read the module, write the node's compiled-module cache, join the
// task's cgroups, bind the task's sockets in the allocation's network
// namespace) and then becomes the task's user, for good, before any guest
// code runs: the task's user (Nomad's task-level user), else the plugin
// config's default_user, "nobody" unless the operator says otherwise. A
// user that resolves to uid 0 is refused unless the plugin config has
// allow_root = true. The node's shared executor becomes default_user when
// it starts, and runs tasks of that user only.
//
// When the client does not run as root, tasks run as the client's user,
// and a task that names another user is refused.

// defaultUser is default_user's default.
const defaultUser = "nobody"

// lookupUser resolves a user of the node by name, or by uid when name is a
// number, with its primary and supplementary groups.
func lookupUser(name string) (*proto.RunAs, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if _, nerr := strconv.ParseUint(name, 10, 32); nerr == nil {
			u, err = user.LookupId(name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("no user %q on this node: %w", name, err)
	}
	num := func(what, v string) (uint32, error) {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("user %q has %s %q, which is not a number", name, what, v)
		}
		return uint32(n), nil
	}
	r := &proto.RunAs{Name: u.Username}
	if r.Uid, err = num("uid", u.Uid); err != nil {
		return nil, err
	}
	if r.Gid, err = num("gid", u.Gid); err != nil {
		return nil, err
	}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, fmt.Errorf("list the groups of user %q: %w", name, err)
	}
	for _, g := range gids {
		n, err := num("group", g)
		if err != nil {
			return nil, err
		}
		r.Groups = append(r.Groups, n)
	}
	return r, nil
}

// clientIsRoot reports whether the driver (and so the Nomad client) runs
// as root; a variable so that tests can ask what a non-root client does.
var clientIsRoot = func() bool { return os.Geteuid() == 0 }

// checkDefaultUser checks the plugin config's default_user: it must exist
// and, unless allow_root is set, not be root. It returns the resolved
// user, or nil when the client does not run as root.
func (c *Config) checkDefaultUser() (*proto.RunAs, error) {
	if !clientIsRoot() {
		return nil, nil
	}
	u, err := lookupUser(c.DefaultUser)
	if err != nil {
		return nil, fmt.Errorf("default_user: %w: name a user of this node, or create %q", err, c.DefaultUser)
	}
	if u.Uid == 0 && !c.AllowRoot {
		return nil, fmt.Errorf("default_user = %q is root, and allow_root is false: tasks would run as root by default; name an unprivileged user, or set allow_root = true", c.DefaultUser)
	}
	return u, nil
}

// taskUser is the user cfg's task runs as, resolved, or nil when the
// executor need not become anyone (the client does not run as root).
func (d *Driver) taskUser(cfg *drivers.TaskConfig) (*proto.RunAs, error) {
	if !clientIsRoot() {
		if cfg.User == "" {
			return nil, nil
		}
		if me, err := user.Current(); err == nil && (cfg.User == me.Username || cfg.User == me.Uid) {
			return nil, nil
		}
		return nil, executor.JobErrorf("user = %q: this node's Nomad client does not run as root, so its wasm tasks run as the client's own user and cannot run as another; remove user", cfg.User)
	}
	if cfg.User == "" {
		if d.config.defaultRunAs == nil {
			return nil, executor.OperatorErrorf("the driver has no plugin configuration yet, so no default_user")
		}
		return d.config.defaultRunAs, nil
	}
	u, err := lookupUser(cfg.User)
	if err != nil {
		return nil, executor.JobErrorf("user = %q: %v; name a user that exists on the node, or remove user (tasks then run as %q)", cfg.User, err, d.config.DefaultUser)
	}
	if u.Uid == 0 && !d.config.AllowRoot {
		return nil, executor.JobErrorf("user = %q is root, and this node's wasm driver does not run tasks as root (its plugin config has allow_root = false); remove user (tasks then run as %q), or name an unprivileged user", cfg.User, d.config.DefaultUser)
	}
	return u, nil
}
