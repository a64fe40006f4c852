// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"sync"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/cgroups"
)

// taskHandleVersion is the version of TaskState. RecoverTask refuses a
// handle of any other version rather than misread it; bump it when a change
// to TaskState would be misread by an older or newer driver.
const taskHandleVersion = 1

// TaskState is what the driver persists in a task handle so that it can
// reattach to the task's executor after the plugin or the client restarts.
// It is stored by Nomad as msgpack: only add fields.
type TaskState struct {
	ReattachConfig *pstructs.ReattachConfig
	// TaskConfig is Nomad's view of the task; its driver config is not
	// serialised with it, hence DriverConfig.
	TaskConfig   *drivers.TaskConfig
	DriverConfig TaskConfig
	ExecutorPid  int
	StartedAt    time.Time
	ModuleSha256 string
	// SharedExecutor: the task runs in the node's shared executor, under
	// its task ID (TaskConfig.ID), beside other tasks.
	SharedExecutor bool
	// ModuleManifest is the digest of the OCI manifest an oci:// module
	// came from.
	ModuleManifest string
	// Cgroups are the cgroup directories the driver made for the task's
	// executor, removed when the task is done.
	Cgroups []string
	// MemoryCgroup is the cgroup whose memory accounting is the task's
	// (v1 its memory cgroup, v2 its one cgroup, possibly Nomad's), for
	// stats and OOM kills. Empty in the state of a driver before v2
	// support: then it is the memory cgroup among Cgroups.
	MemoryCgroup string
	// OOMKillsBefore is the memory cgroup's count of OOM kills when the
	// task started: Nomad's cgroups outlive a task's restarts, so only a
	// count above it is this run's.
	OOMKillsBefore int
}

func (s *TaskState) memoryCgroup() string {
	if s.MemoryCgroup != "" {
		return s.MemoryCgroup
	}
	return cgroups.MemoryAmong(s.Cgroups)
}

// taskStore holds the handles of the tasks this driver knows.
type taskStore struct {
	mu    sync.RWMutex
	tasks map[string]*taskHandle
}

func newTaskStore() *taskStore {
	return &taskStore{tasks: map[string]*taskHandle{}}
}

func (s *taskStore) Set(id string, h *taskHandle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tasks[id] = h
}

func (s *taskStore) Get(id string) (*taskHandle, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h, ok := s.tasks[id]
	return h, ok
}

func (s *taskStore) Delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tasks, id)
}
