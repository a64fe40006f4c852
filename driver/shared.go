// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// sharedExecutor finds or launches the node's shared executor (plugin
// config shared_executor = true), which runs every Wasm task of the node.
//
// Ownership: the executor this driver launched is held by it through the
// watch pipe (executor.LaunchConfig.SharedLog); one it reattached to,
// through an Attach stream that lasts until the driver's context ends. The
// executor exits once it holds no task and no driver. Its reattach config
// is kept in <cache_dir>/shared/executor.json, so that a driver that
// restarts finds it before any task is recovered; each task's handle also
// carries it.
type sharedExecutor struct {
	ctx    context.Context
	logger hclog.Logger
	binary string

	mu  sync.Mutex
	dir string // set by configure
	// runAs is the user a shared executor this driver launches becomes
	// (default_user), nil when it stays who the driver is (see user.go).
	runAs *proto.RunAs
	// current is the executor new tasks go to; known are all the shared
	// executors this driver holds, by pid (a recovered task may run in one
	// that is not current).
	current *executor.Client
	known   map[int]*executor.Client
}

func newSharedExecutor(ctx context.Context, logger hclog.Logger, binary string) *sharedExecutor {
	return &sharedExecutor{ctx: ctx, logger: logger, binary: binary, known: map[int]*executor.Client{}}
}

// sharedDir is where the shared executor's reattach config and log live.
func sharedDir(cacheDir string) string { return filepath.Join(cacheDir, "shared") }

const (
	sharedStateFile = "executor.json"
	sharedLogFile   = "executor.log"
)

// configure sets where the shared executor keeps its files and the user
// it runs as.
func (s *sharedExecutor) configure(dir string, runAs *proto.RunAs) {
	s.mu.Lock()
	s.dir, s.runAs = dir, runAs
	s.mu.Unlock()
}

// user is the user the shared executor runs as, nil when it runs as the
// driver does.
func (s *sharedExecutor) user() *proto.RunAs {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runAs
}

// get returns the shared executor for a new task: the one in use, one an
// earlier driver left running, or a new one.
func (s *sharedExecutor) get() (*executor.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.current; c != nil && !c.Exited() {
		return c, nil
	}
	s.current = nil
	if rc := s.readState(); rc != nil {
		if c, err := s.reattachLocked(rc); err == nil && s.takesNewTasksLocked(c) {
			s.current = c
			return c, nil
		}
	}
	if s.dir == "" {
		return nil, errors.New("the driver has no configuration yet")
	}
	// The cache directory itself is readable by all (an executor that runs
	// as a task's user reads it); the shared executor's own files are
	// root's.
	if err := os.MkdirAll(filepath.Dir(s.dir), 0o755); err != nil {
		return nil, fmt.Errorf("create the cache directory: %w", err)
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the shared executor's directory: %w", err)
	}
	c, err := executor.Launch(executor.LaunchConfig{Binary: s.binary, Logger: s.logger, SharedLog: filepath.Join(s.dir, sharedLogFile), RunAs: s.runAs})
	if err != nil {
		return nil, err
	}
	s.logger.Info("launched the node's shared executor", "pid", c.Pid)
	s.known[c.Pid] = c
	s.current = c
	if err := s.writeState(c.ReattachConfig()); err != nil {
		s.logger.Warn("cannot record the shared executor for a restarted driver; its tasks still carry it", "error", err)
	}
	return c, nil
}

// reattach returns the shared executor a recovered task runs in.
func (s *sharedExecutor) reattach(rc *plugin.ReattachConfig) (*executor.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.reattachLocked(rc)
	if err == nil && s.current == nil && s.takesNewTasksLocked(c) {
		s.current = c
	}
	return c, err
}

// takesNewTasksLocked says whether c, a shared executor an earlier driver
// launched, runs as the user this driver's executor would: default_user,
// or the driver's own user when it does not become one. One that does not
// (the operator changed default_user and restarted the client) keeps
// running the tasks it has, which are recovered into it, but new tasks go
// to a new shared executor of the right user.
func (s *sharedExecutor) takesNewTasksLocked(c *executor.Client) bool {
	want := s.runAs
	if want == nil {
		want = &proto.RunAs{Name: "the driver's own user", Uid: uint32(os.Geteuid()), Gid: uint32(os.Getegid())}
		gids, err := os.Getgroups()
		if err != nil {
			s.logger.Warn("cannot read the driver's groups; new tasks go to a new shared executor", "error", err)
			return false
		}
		for _, g := range gids {
			want.Groups = append(want.Groups, uint32(g))
		}
	}
	uid, gid, groups, err := processUser(c.Pid)
	if errors.Is(err, errNoProcessUser) {
		return true
	}
	if err != nil {
		s.logger.Warn("cannot read the shared executor's user; new tasks go to a new shared executor", "pid", c.Pid, "error", err)
		return false
	}
	wantGroups := slices.Compact(slices.Sorted(slices.Values(want.Groups)))
	if uid == want.Uid && gid == want.Gid && slices.Equal(groups, wantGroups) {
		return true
	}
	s.logger.Warn("the running shared executor is not of default_user (changed since it started): it keeps its tasks, and new tasks go to a new shared executor",
		"pid", c.Pid, "uid", uid, "gid", gid, "groups", groups, "default_user", want.Name, "want_uid", want.Uid, "want_gid", want.Gid, "want_groups", wantGroups)
	return false
}

func (s *sharedExecutor) reattachLocked(rc *plugin.ReattachConfig) (*executor.Client, error) {
	if c, ok := s.known[rc.Pid]; ok && !c.Exited() {
		return c, nil
	}
	c, err := executor.Reattach(rc)
	if err != nil {
		return nil, err
	}
	v, err := c.Version(s.ctx, &proto.VersionRequest{})
	if err != nil || !v.Shared {
		c.Close()
		if err == nil {
			err = fmt.Errorf("executor %d is not a shared executor", rc.Pid)
		}
		return nil, err
	}
	s.known[rc.Pid] = c
	go func() {
		err := c.Attach(s.ctx)
		if s.ctx.Err() == nil {
			// Gone while this driver held it: forget it.
			s.logger.Warn("the shared executor went away", "pid", c.Pid, "error", err)
			s.lost(c)
		}
	}()
	s.logger.Info("reattached to the node's shared executor", "pid", c.Pid, "tasks", v.Tasks)
	return c, nil
}

// lost forgets a shared executor found dead.
func (s *sharedExecutor) lost(c *executor.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == c {
		s.current = nil
	}
	if s.known[c.Pid] == c {
		delete(s.known, c.Pid)
	}
	s.logger.Warn("the node's shared executor is gone", "pid", c.Pid)
}

// version asks the shared executor (launching it if need be) for its
// version and what the node offers tasks.
func (s *sharedExecutor) version(ctx context.Context, req *proto.VersionRequest) (*proto.VersionResponse, error) {
	c, err := s.get()
	if err != nil {
		return nil, err
	}
	return c.Version(ctx, req)
}

func (s *sharedExecutor) readState() *plugin.ReattachConfig {
	if s.dir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(s.dir, sharedStateFile))
	if err != nil {
		return nil
	}
	var rc pstructs.ReattachConfig
	if err := json.Unmarshal(b, &rc); err != nil {
		s.logger.Warn("ignoring an unreadable record of the shared executor", "error", err)
		return nil
	}
	r, err := pstructs.ReattachConfigToGoPlugin(&rc)
	if err != nil || executor.ProcessGone(r.Pid) {
		return nil
	}
	return r
}

// writeState records rc atomically.
func (s *sharedExecutor) writeState(rc *plugin.ReattachConfig) error {
	b, err := json.Marshal(pstructs.ReattachConfigFromGoPlugin(rc))
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.dir, sharedStateFile), b)
}
