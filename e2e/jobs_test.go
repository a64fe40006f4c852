// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/shoenig/test/must"
	"github.com/shoenig/test/wait"
)

// moduleSHA256 reads a module's digest from example-jobs/build/SHA256SUMS.
func moduleSHA256(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open(filepath.Join(exampleModules(t), "SHA256SUMS"))
	must.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if sum, file, ok := strings.Cut(sc.Text(), "  "); ok && file == name {
			return sum
		}
	}
	t.Fatalf("no digest for %s", name)
	return ""
}

// parseJob parses HCL through the Nomad API, with HCL2 variables.
func (c *Cluster) parseJob(t *testing.T, src string, vars map[string]string) *nomadapi.Job {
	t.Helper()
	var v strings.Builder
	for k, val := range vars {
		fmt.Fprintf(&v, "%s = %q\n", k, val)
	}
	job, err := c.Nomad.Jobs().ParseHCLOpts(&nomadapi.JobsParseRequest{JobHCL: src, Variables: v.String(), Canonicalize: true})
	must.NoError(t, err)
	return job
}

// exampleJob parses one of example-jobs/*.nomad.hcl.
func (c *Cluster) exampleJob(t *testing.T, file string, vars map[string]string) *nomadapi.Job {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "example-jobs", file))
	must.NoError(t, err)
	if vars == nil {
		vars = map[string]string{}
	}
	vars["artifact_url"] = c.ArtifactURL
	return c.parseJob(t, string(src), vars)
}

func (c *Cluster) register(t *testing.T, job *nomadapi.Job) {
	t.Helper()
	_, _, err := c.Nomad.Jobs().Register(job, nil)
	must.NoError(t, err)
}

// waitAllocs waits until the job has n allocations that satisfy ok, and
// returns them.
func (c *Cluster) waitAllocs(t *testing.T, jobID string, n int, ok func(*nomadapi.AllocationListStub) bool) []*nomadapi.Allocation {
	t.Helper()
	var allocs []*nomadapi.Allocation
	must.Wait(t, wait.InitialSuccess(wait.ErrorFunc(func() error {
		stubs, _, err := c.Nomad.Jobs().Allocations(jobID, true, nil)
		if err != nil {
			return err
		}
		allocs = allocs[:0]
		var states []string
		for _, s := range stubs {
			c.sawAlloc(s.ID)
			states = append(states, s.ClientStatus)
			if ok(s) {
				a, _, err := c.Nomad.Allocations().Info(s.ID, nil)
				if err != nil {
					return err
				}
				allocs = append(allocs, a)
			}
		}
		if len(allocs) != n {
			return fmt.Errorf("job %s: %d of %d allocations as wanted (states %v)", jobID, len(allocs), n, states)
		}
		return nil
	}), wait.Timeout(120*time.Second), wait.Gap(250*time.Millisecond)))
	return allocs
}

func status(s string) func(*nomadapi.AllocationListStub) bool {
	return func(a *nomadapi.AllocationListStub) bool { return a.ClientStatus == s }
}

// taskState returns a task's state in an allocation, freshly read.
func (c *Cluster) taskState(t *testing.T, allocID, task string) *nomadapi.TaskState {
	t.Helper()
	a, _, err := c.Nomad.Allocations().Info(allocID, nil)
	must.NoError(t, err)
	ts, ok := a.TaskStates[task]
	must.True(t, ok, must.Sprintf("no state for task %s", task))
	return ts
}

// logs reads a task's whole stdout or stderr through Nomad's logs API,
// as nomad alloc logs does, retrying while the client cannot be reached
// (just after it restarted, the servers have no path to it yet).
func (c *Cluster) logs(t *testing.T, alloc *nomadapi.Allocation, task, stream string) string {
	t.Helper()
	var got string
	must.Wait(t, wait.InitialSuccess(wait.ErrorFunc(func() error {
		var err error
		got, err = c.readLogs(alloc, task, stream)
		return err
	}), wait.Timeout(60*time.Second), wait.Gap(200*time.Millisecond)))
	return got
}

// readLogs reads a task's stdout or stderr from its start through Nomad's
// logs API (not following).
func (c *Cluster) readLogs(alloc *nomadapi.Allocation, task, stream string) (string, error) {
	return c.readLogsFrom(alloc, task, stream, nomadapi.OriginStart, 0)
}

// readLogsFrom reads a task's stdout or stderr from offset bytes after its
// start or before its end (origin), through Nomad's logs API (not
// following).
func (c *Cluster) readLogsFrom(alloc *nomadapi.Allocation, task, stream, origin string, offset int64) (string, error) {
	cancel := make(chan struct{})
	defer close(cancel)
	frames, errs := c.Nomad.AllocFS().Logs(alloc, false, task, stream, origin, offset, cancel, nil)
	var b strings.Builder
	for {
		select {
		case f, ok := <-frames:
			if !ok {
				return b.String(), nil
			}
			b.Write(f.Data)
		case err := <-errs:
			return b.String(), err
		case <-time.After(30 * time.Second):
			return b.String(), fmt.Errorf("the logs of %s (%s) did not end", task, stream)
		}
	}
}

// waitLogs polls a task's log until it contains want.
func (c *Cluster) waitLogs(t *testing.T, alloc *nomadapi.Allocation, task, stream, want string) string {
	t.Helper()
	var got string
	must.Wait(t, wait.InitialSuccess(wait.ErrorFunc(func() error {
		b, err := c.readLogs(alloc, task, stream)
		if err != nil {
			return err
		}
		if got = b; !strings.Contains(got, want) {
			return fmt.Errorf("%s of %s has no %q yet:\n%s", stream, task, want, got)
		}
		return nil
	}), wait.Timeout(60*time.Second), wait.Gap(200*time.Millisecond)))
	return got
}

// hasEvent reports whether a task has an event whose display message or
// driver message contains want.
func hasEvent(ts *nomadapi.TaskState, want string) bool {
	for _, e := range ts.Events {
		if strings.Contains(e.DisplayMessage, want) || strings.Contains(e.DriverMessage, want) || strings.Contains(e.DriverError, want) {
			return true
		}
	}
	return false
}

func eventList(ts *nomadapi.TaskState) string {
	var b strings.Builder
	for _, e := range ts.Events {
		fmt.Fprintf(&b, "%s: %s\n", e.Type, e.DisplayMessage)
	}
	return b.String()
}

// exec runs cmd in the task as nomad alloc exec does and returns its exit
// code, stdout and stderr. A session that Nomad's websocket ends before
// its exit frame ("unexpected EOF": Nomad's own race, hashicorp/nomad#9892
// and #27146, seen here with short commands that print much) is run again,
// up to three times; any other error is returned. The error comes in two
// forms: io.ErrUnexpectedEOF when the connection drops, and, when Nomad
// closes the websocket with that reason, a plain error of the same text
// (the API client drops the close frame's code: errors.New(wsErr.Text)), so
// its text is all there is to go by.
func (c *Cluster) exec(t *testing.T, alloc *nomadapi.Allocation, task string, cmd ...string) (int, string, string, error) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		var stdout, stderr strings.Builder
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		code, err := c.Nomad.Allocations().Exec(ctx, alloc, task, false, cmd, strings.NewReader(""), &stdout, &stderr, nil, nil)
		cancel()
		if err != nil && (errors.Is(err, io.ErrUnexpectedEOF) || err.Error() == io.ErrUnexpectedEOF.Error()) && attempt < 3 {
			t.Logf("exec %v: %v (Nomad's websocket race); running it again", cmd, err)
			continue
		}
		return code, stdout.String(), stderr.String(), err
	}
}
