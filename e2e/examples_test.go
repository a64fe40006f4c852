// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"strings"
	"testing"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/shoenig/test/must"
)

// TestExamples runs every job in example-jobs on one single-client cluster
// and checks its output and exit status.
func TestExamples(t *testing.T) {
	c := StartCluster(t)

	t.Run("hello", func(t *testing.T) {
		job := c.exampleJob(t, "hello.nomad.hcl", map[string]string{"hello_sha256": moduleSHA256(t, "hello.wasm")})
		c.register(t, job)
		alloc := c.waitAllocs(t, *job.ID, 1, status("complete"))[0]
		ts := c.taskState(t, alloc.ID, "hello")
		must.Eq(t, "dead", ts.State)
		must.False(t, ts.Failed)
		must.Eq(t, 0, exitCode(ts), must.Sprint(eventList(ts)))
		out := c.waitLogs(t, alloc, "hello", "stdout", "from WebAssembly")
		must.StrContains(t, out, "Hello, Nomad, from WebAssembly!\nalloc "+alloc.ID+", task hello\n")
		must.True(t, hasEvent(ts, "compiled-module cache"), must.Sprint(eventList(ts)))
	})

	t.Run("env-and-files", func(t *testing.T) {
		job := c.exampleJob(t, "env-and-files.nomad.hcl", nil)
		c.register(t, job)
		alloc := c.waitAllocs(t, *job.ID, 1, status("complete"))[0]
		out := c.waitLogs(t, alloc, "files", "stdout", "wrote /alloc/data/result.txt")
		must.Eq(t, 0, exitCode(c.taskState(t, alloc.ID, "files")))
		must.StrContains(t, out, "template: hello from a template in env-and-files\n")
		must.StrContains(t, out, "env: NOMAD_TASK_DIR=/local\n")
		must.StrContains(t, out, "env: NOMAD_ALLOC_ID="+alloc.ID+"\n")
		r, err := c.Nomad.AllocFS().Cat(alloc, "alloc/data/result.txt", nil)
		must.NoError(t, err)
		defer r.Close()
		b := new(strings.Builder)
		_, err = io.Copy(b, r)
		must.NoError(t, err)
		must.Eq(t, "written by the wasm task\n", b.String())
	})

	t.Run("dispatch", func(t *testing.T) {
		job := c.exampleJob(t, "dispatch.nomad.hcl", nil)
		c.register(t, job)
		resp, _, err := c.Nomad.Jobs().Dispatch(*job.ID, nil, []byte("hello payload\n"), "", nil)
		must.NoError(t, err)
		alloc := c.waitAllocs(t, resp.DispatchedJobID, 1, status("complete"))[0]
		must.Eq(t, "HELLO PAYLOAD\n", c.waitLogs(t, alloc, "upper", "stdout", "HELLO PAYLOAD"))
		must.Eq(t, 0, exitCode(c.taskState(t, alloc.ID, "upper")))

		// A repeated start: the module started on the node moments ago, so
		// the spare executor (warm_modules, on by default) has prepared it.
		// The spare is replaced after each start and prepares in the
		// background, so a start may come before it is done: one of three
		// must find it ready.
		var events []string
		for i := range 3 {
			resp, _, err := c.Nomad.Jobs().Dispatch(*job.ID, nil, []byte(fmt.Sprintf("again %d\n", i)), "", nil)
			must.NoError(t, err)
			alloc := c.waitAllocs(t, resp.DispatchedJobID, 1, status("complete"))[0]
			ts := c.taskState(t, alloc.ID, "upper")
			must.Eq(t, 0, exitCode(ts))
			if hasEvent(ts, "was ready: the spare executor had prepared it") {
				return
			}
			events = append(events, eventList(ts))
		}
		t.Fatalf("no repeated dispatch was prepared by the spare; events:\n%s", strings.Join(events, "\n"))
	})

	t.Run("periodic", func(t *testing.T) {
		job := c.exampleJob(t, "periodic.nomad.hcl", nil)
		c.register(t, job)
		// Force a launch rather than wait for the next minute.
		_, _, err := c.Nomad.Jobs().PeriodicForce(*job.ID, nil)
		must.NoError(t, err)
		children := c.childJobs(t, *job.ID)
		alloc := c.waitAllocs(t, children[0], 1, status("complete"))[0]
		c.waitLogs(t, alloc, "hello", "stdout", "Hello, periodic run, from WebAssembly!")
		must.Eq(t, 0, exitCode(c.taskState(t, alloc.ID, "hello")))
	})

	t.Run("constraint", func(t *testing.T) {
		job := c.exampleJob(t, "constraint.nomad.hcl", nil)
		c.register(t, job)
		alloc := c.waitAllocs(t, *job.ID, 1, status("complete"))[0]
		c.waitLogs(t, alloc, "hello", "stdout", "Hello, a constrained node, from WebAssembly!")
		must.Eq(t, 0, exitCode(c.taskState(t, alloc.ID, "hello")))
		node, _, err := c.Nomad.Nodes().Info(alloc.NodeID, nil)
		must.NoError(t, err)
		must.Eq(t, "compiler", node.Attributes["driver.wasm.engine"])
		must.Eq(t, "preview1", node.Attributes["driver.wasm.wasi"])
	})

	t.Run("mixed", func(t *testing.T) {
		// Docker is a prerequisite, never a reason to skip.
		nodes := c.waitNodes(t, 1, func(*nomadapi.Node) bool { return true })
		if d := nodes[0].Drivers["docker"]; d == nil || !d.Healthy {
			t.Fatalf("the docker driver is not healthy on the client (%+v): the e2e tests need a running Docker engine", d)
		}
		job := c.exampleJob(t, "mixed.nomad.hcl", nil)
		c.register(t, job)
		alloc := c.waitAllocs(t, *job.ID, 1, status("complete"))[0]
		// The Wasm task read what the Docker task wrote into the shared
		// /alloc and wrote its transformation back.
		must.Eq(t, "WRITTEN BY A DOCKER TASK\n", c.waitLogs(t, alloc, "transform", "stdout", "WRITTEN BY A DOCKER TASK"))
		r, err := c.Nomad.AllocFS().Cat(alloc, "alloc/data/output.txt", nil)
		must.NoError(t, err)
		defer r.Close()
		b := new(strings.Builder)
		_, err = io.Copy(b, r)
		must.NoError(t, err)
		must.Eq(t, "WRITTEN BY A DOCKER TASK\n", b.String())

		// The Docker tasks are judged by their task states, not their logs:
		// Nomad's docker driver can lose the output of a container that
		// exits within milliseconds of starting (its log forwarder stops
		// when the container does, hashicorp/nomad#6931).
		produce := c.taskState(t, alloc.ID, "produce")
		transform := c.taskState(t, alloc.ID, "transform")
		sidecar := c.taskState(t, alloc.ID, "sidecar")
		for name, ts := range map[string]*nomadapi.TaskState{"produce": produce, "transform": transform, "sidecar": sidecar} {
			must.Eq(t, "dead", ts.State, must.Sprint(name))
			must.False(t, ts.Failed, must.Sprintf("%s failed:\n%s", name, eventList(ts)))
		}
		must.Eq(t, 0, exitCode(produce), must.Sprint(eventList(produce)))
		must.Eq(t, 0, exitCode(transform), must.Sprint(eventList(transform)))
		// The prestart task ended before the Wasm task began; the sidecar
		// ran beside the Wasm task, from before it started until after it
		// finished, when Nomad stopped it.
		must.False(t, produce.FinishedAt.After(transform.StartedAt), must.Sprintf("produce finished %v, transform started %v", produce.FinishedAt, transform.StartedAt))
		must.False(t, sidecar.StartedAt.After(transform.StartedAt), must.Sprintf("sidecar started %v, transform started %v", sidecar.StartedAt, transform.StartedAt))
		must.False(t, sidecar.FinishedAt.Before(transform.FinishedAt), must.Sprintf("sidecar finished %v, transform finished %v", sidecar.FinishedAt, transform.FinishedAt))
	})

	// A refused task config or module fails the task, without retries,
	// with the driver's message in its events.
	refused := []struct{ name, config, want string }{
		{"bad module is a driver failure event", `module = "local/missing.wasm"`,
			"module local/missing.wasm does not exist in the task's view"},
		{"unknown config field is rejected", "module = \"local/x.wasm\"\nagrs = [\"x\"]",
			`No argument or block type is named "agrs"`},
	}
	for i, r := range refused {
		t.Run(r.name, func(t *testing.T) {
			id := fmt.Sprintf("refused-%d", i)
			job := c.parseJob(t, fmt.Sprintf(`
job %q {
  type = "batch"
  group "g" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }
    task "t" {
      driver = "wasm"
      config {
        %s
      }
    }
  }
}`, id, r.config), nil)
			c.register(t, job)
			alloc := c.waitAllocs(t, id, 1, status("failed"))[0]
			ts := c.taskState(t, alloc.ID, "t")
			must.True(t, hasEvent(ts, r.want), must.Sprint(eventList(ts)))
		})
	}
}

// exitCode is the exit code in a dead task's Terminated event, or -1.
func exitCode(ts *nomadapi.TaskState) int {
	for i := len(ts.Events) - 1; i >= 0; i-- {
		if ts.Events[i].Type == nomadapi.TaskTerminated {
			return ts.Events[i].ExitCode
		}
	}
	return -1
}

// childJobs waits for the periodic job to have launched a child and
// returns the children's IDs.
func (c *Cluster) childJobs(t *testing.T, parent string) []string {
	t.Helper()
	var ids []string
	waitFor(t, func() bool {
		jobs, _, err := c.Nomad.Jobs().PrefixList(parent + "/")
		if err != nil {
			return false
		}
		ids = ids[:0]
		for _, j := range jobs {
			if j.ParentID == parent {
				ids = append(ids, j.ID)
			}
		}
		return len(ids) > 0
	})
	return ids
}
