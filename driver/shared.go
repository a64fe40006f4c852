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
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/internal/atomicfile"
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

	// search is held by the get that finds or launches an executor for
	// new tasks (see get); mu guards what follows it, and is never held
	// across a call to an executor.
	search sync.Mutex
	mu     sync.Mutex
	dir    string // set by configure
	// runAs is the user a shared executor this driver launches becomes
	// (default_user), nil when it stays who the driver is (see user.go).
	runAs *proto.RunAs
	// keep is how many programs of ended tasks a shared executor this
	// driver launches keeps for the next task of the same module
	// (warm_modules).
	keep int
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
func (s *sharedExecutor) configure(dir string, runAs *proto.RunAs, keep int) {
	s.mu.Lock()
	s.dir, s.runAs, s.keep = dir, runAs, keep
	s.mu.Unlock()
}

// user is the user the shared executor runs as, nil when it runs as the
// driver does.
func (s *sharedExecutor) user() *proto.RunAs {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runAs
}

// versionTimeout bounds the Version call that checks a shared executor
// found running before it is used (reattach): one that does not answer
// within it is not used.
const versionTimeout = 5 * time.Second

// get returns the shared executor for a new task: the one in use, one an
// earlier driver left running, or a new one.
//
// The executor in use is returned at once. Finding or launching another
// takes calls to executors, bounded by deadlines (Reattach's, versionTimeout,
// go-plugin's start timeout), and is done by one get at a time (search),
// so that concurrent starts launch one executor; s.mu is held across none
// of them, so that a slow or hung executor holds up no start that does not
// need it.
func (s *sharedExecutor) get() (*executor.Client, error) {
	if c := s.running(); c != nil {
		return c, nil
	}
	s.search.Lock()
	defer s.search.Unlock()
	if c := s.running(); c != nil {
		// Found or launched by the get this one waited for.
		return c, nil
	}
	s.mu.Lock()
	dir, runAs, keep := s.dir, s.runAs, s.keep
	s.mu.Unlock()
	if rc := s.readState(dir); rc != nil {
		if c, err := s.attach(rc); err == nil && s.takesNewTasks(c, runAs) {
			s.setCurrent(c)
			return c, nil
		}
	}
	if dir == "" {
		return nil, errors.New("the driver has no configuration yet")
	}
	// The cache directory itself is readable by all (an executor that runs
	// as a task's user reads it); the shared executor's own files are
	// root's.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("create the cache directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the shared executor's directory: %w", err)
	}
	pruneHandoffSockets(dir)
	// Warm carries only how many programs it keeps (see keep).
	c, err := executor.Launch(executor.LaunchConfig{Binary: s.binary, Logger: s.logger, SharedLog: filepath.Join(dir, sharedLogFile), RunAs: runAs,
		Warm: &executor.Warm{Modules: keep}})
	if err != nil {
		return nil, err
	}
	s.logger.Info("launched the node's shared executor", "pid", c.Pid)
	s.mu.Lock()
	s.known[c.Pid] = c
	s.current = c
	s.mu.Unlock()
	if err := s.writeState(dir, c.ReattachConfig()); err != nil {
		s.logger.Warn("cannot record the shared executor for a restarted driver; its tasks still carry it", "error", err)
	}
	return c, nil
}

// running is the executor new tasks go to, if it still runs.
func (s *sharedExecutor) running() *executor.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.current; c != nil && !c.Exited() {
		return c
	}
	s.current = nil
	return nil
}

// setCurrent makes c the executor new tasks go to.
func (s *sharedExecutor) setCurrent(c *executor.Client) {
	s.mu.Lock()
	s.current = c
	s.mu.Unlock()
}

// reattach returns the shared executor a recovered task runs in. New tasks
// go to it too when none is in use and it runs as they would.
func (s *sharedExecutor) reattach(rc *plugin.ReattachConfig) (*executor.Client, error) {
	c, err := s.attach(rc)
	if err != nil {
		return nil, err
	}
	if s.running() == nil && s.takesNewTasks(c, s.user()) {
		s.mu.Lock()
		if s.current == nil {
			s.current = c
		}
		s.mu.Unlock()
	}
	return c, nil
}

// takesNewTasks says whether c, a shared executor an earlier driver
// launched, runs as the user this driver's executor would: runAs
// (default_user), or the driver's own user when it is nil. One that does
// not (the operator changed default_user and restarted the client) keeps
// running the tasks it has, which are recovered into it, but new tasks go
// to a new shared executor of the right user.
func (s *sharedExecutor) takesNewTasks(c *executor.Client, runAs *proto.RunAs) bool {
	want := runAs
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

// attach returns the shared executor at rc: one this driver holds, or one
// it reattaches to and then holds (Attach). The calls to it are bounded
// (Reattach's own deadline, versionTimeout) and made without s.mu.
func (s *sharedExecutor) attach(rc *plugin.ReattachConfig) (*executor.Client, error) {
	if c := s.holding(rc.Pid); c != nil {
		return c, nil
	}
	c, err := executor.Reattach(rc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(s.ctx, versionTimeout)
	v, err := c.Version(ctx, &proto.VersionRequest{})
	cancel()
	if err != nil || !v.Shared {
		c.Close()
		if err == nil {
			err = fmt.Errorf("executor %d is not a shared executor", rc.Pid)
		} else {
			err = fmt.Errorf("executor %d did not say what it is within %s: %w", rc.Pid, versionTimeout, err)
		}
		return nil, err
	}
	s.mu.Lock()
	if held, ok := s.known[rc.Pid]; ok && !held.Exited() {
		// Reattached to meanwhile (two of its tasks recovered at once).
		s.mu.Unlock()
		c.Close()
		return held, nil
	}
	s.known[rc.Pid] = c
	s.mu.Unlock()
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

// holding is the shared executor of pid this driver holds, if it still
// runs.
func (s *sharedExecutor) holding(pid int) *executor.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.known[pid]; ok && !c.Exited() {
		return c
	}
	return nil
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

// readState is the shared executor recorded in dir, if it still runs.
func (s *sharedExecutor) readState(dir string) *plugin.ReattachConfig {
	if dir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(dir, sharedStateFile))
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

// writeState records rc in dir atomically.
func (s *sharedExecutor) writeState(dir string, rc *plugin.ReattachConfig) error {
	b, err := json.Marshal(pstructs.ReattachConfigFromGoPlugin(rc))
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, sharedStateFile), b)
}
