// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/shoenig/test/must"
)

// TestOutbound: Wasm tasks that call out, under the clients' ceiling
// (plugin config outbound.allow = loopback): the outbound example (an
// http-mode handler calling the group's Docker counter at the address
// Consul gives, host networking), the same handler refused by its rules
// (502, and a task event naming the destination), a bridge-mode group in
// which the handler reaches the Docker counter over the namespace's
// loopback, and a job whose rule is beyond the ceiling (a job error at
// start naming it).
func TestOutbound(t *testing.T) {
	c := networkCluster(t)
	requireDocker(t, c)

	t.Run("example: a wasm handler calls a docker service Consul knows", func(t *testing.T) {
		job := c.exampleJob(t, "outbound.nomad.hcl", nil)
		c.register(t, job)
		alloc := c.waitAllocs(t, *job.ID, 1, status("running"))[0]
		counter := c.waitConsulService(t, "outbound-counter", alloc.ID, 1)
		counterAddr := net.JoinHostPort(counter.Service.Address, strconv.Itoa(counter.Service.Port))
		visits := c.waitConsulService(t, "outbound-visits", alloc.ID, 1)
		url := "http://" + net.JoinHostPort(visits.Service.Address, strconv.Itoa(visits.Service.Port)) + "/"
		must.Eq(t, "Hello from WebAssembly! The counter at "+counterAddr+" says: count 1\n", httpGet(t, url))
		must.Eq(t, "Hello from WebAssembly! The counter at "+counterAddr+" says: count 2\n", httpGet(t, url))
		_, _, err := c.Nomad.Jobs().Deregister(*job.ID, true, nil)
		must.NoError(t, err)
	})

	t.Run("refused by the task's rules", func(t *testing.T) {
		job := c.exampleJob(t, "outbound.nomad.hcl", nil)
		*job.ID, *job.Name = "outbound-refused", "outbound-refused"
		// Another port of the counter's address: not the counter's.
		job.TaskGroups[0].Tasks[1].Config["outbound"] = []any{"tcp://${NOMAD_IP_counter}:1"}
		job.TaskGroups[0].Services[0].Name = "refused-counter"
		job.TaskGroups[0].Services[1].Name = "refused-visits"
		job.TaskGroups[0].Tasks[1].Templates[0].EmbeddedTmpl = ptr("UPSTREAM={{ range service \"refused-counter\" }}{{ .Address }}:{{ .Port }}{{ end }}\n")
		c.register(t, job)
		alloc := c.waitAllocs(t, *job.ID, 1, status("running"))[0]
		counter := c.waitConsulService(t, "refused-counter", alloc.ID, 1)
		counterAddr := net.JoinHostPort(counter.Service.Address, strconv.Itoa(counter.Service.Port))
		visits := c.waitConsulService(t, "refused-visits", alloc.ID, 1)
		url := "http://" + net.JoinHostPort(visits.Service.Address, strconv.Itoa(visits.Service.Port)) + "/"
		// Until the template has the counter's address (the task restarts
		// with it), the handler answers 500.
		body := httpStatus(t, url, http.StatusBadGateway)
		must.Eq(t, "visits: cannot reach the counter at "+counterAddr+": sock_connect: errno 2 (refused: the task's outbound rules do not allow it)\n", body)
		c.waitEvent(t, alloc.ID, "visits", "Outbound: connection to "+counterAddr+" refused (EACCES): no outbound rule of the task's allows it")
		_, _, err := c.Nomad.Jobs().Deregister(*job.ID, true, nil)
		must.NoError(t, err)
	})

	t.Run("bridge: the handler reaches a docker task over localhost", func(t *testing.T) {
		job := c.parseJob(t, bridgeOutboundJob, map[string]string{"artifact_url": c.ArtifactURL})
		c.register(t, job)
		alloc := c.waitAllocs(t, *job.ID, 1, status("running"))[0]
		url := "http://" + bridgePort(t, alloc, "web", 8080) + "/"
		must.Eq(t, "Hello from WebAssembly! The counter at 127.0.0.1:9000 says: count 1\n", httpGet(t, url))
		must.Eq(t, "Hello from WebAssembly! The counter at 127.0.0.1:9000 says: count 2\n", httpGet(t, url))
		c.stopBridgeJob(t, *job.ID, alloc)
	})

	t.Run("beyond the operator's ceiling", func(t *testing.T) {
		job := c.exampleJob(t, "outbound.nomad.hcl", nil)
		*job.ID, *job.Name = "outbound-ceiling", "outbound-ceiling"
		job.TaskGroups[0].Tasks[1].Config["outbound"] = []any{"tcp://10.1.2.3:5432"}
		job.TaskGroups[0].Services = nil
		job.TaskGroups[0].Tasks[1].Templates = nil
		job.TaskGroups[0].Tasks = job.TaskGroups[0].Tasks[1:]
		c.register(t, job)
		alloc := c.waitAllocs(t, *job.ID, 1, func(a *nomadapi.AllocationListStub) bool { return a.TaskStates["visits"] != nil })[0]
		c.waitEvent(t, alloc.ID, "visits", `Rejected by the wasm driver (fix the job; restarting will not help): outbound[0] "tcp://10.1.2.3:5432" is beyond what this node's operator allows`)
		_, _, err := c.Nomad.Jobs().Deregister(*job.ID, true, nil)
		must.NoError(t, err)
	})
}

// stopBridgeJob stops job (purged) and waits until the client has torn
// down its allocations' bridge networks: once purged, the job's
// allocations are no longer listed, and networkCluster's own wait at the
// end would not see them; agents stopped sooner leave the networks (CNI's
// port mappings among them) behind on the host for the next test.
func (c *Cluster) stopBridgeJob(t *testing.T, jobID string, allocs ...*nomadapi.Allocation) {
	t.Helper()
	_, _, err := c.Nomad.Jobs().Deregister(jobID, true, nil)
	must.NoError(t, err)
	for _, a := range allocs {
		waitErr(t, func() error {
			if left := networkLeft(a.ID); len(left) > 0 {
				return fmt.Errorf("allocation %s stopped but its network is still there: %v", a.ID, left)
			}
			return nil
		})
	}
}

func ptr[T any](v T) *T { return &v }

// bridgeOutboundJob: in a bridge-mode group, the Docker counter serves on
// 127.0.0.1:9000 of the allocation's namespace (nothing on the node's), and
// the Wasm handler calls it there.
var bridgeOutboundJob = strings.ReplaceAll(fmt.Sprintf(`
variable "artifact_url" {
  type = string
}

job "outbound-bridge" {
  type = "service"

  group "app" {
    network {
      mode = "bridge"
      port "web" {
        to = 8080
      }
    }

    task "counter" {
      driver = "docker"
      config {
        image      = "wasm-e2e/sidecar:1"
        force_pull = false
        args       = ["count", "9000"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }

    task "visits" {
      driver = "wasm"
      artifact {
        source      = "${var.artifact_url}/visits.wasm"
        destination = "local/"
      }
      env {
        UPSTREAM = "127.0.0.1:9000"
      }
      config {
        module   = "local/visits.wasm"
        outbound = [%q]
        http {
          port = "web"
        }
      }
      resources {
        cpu    = 100
        memory = 32
      }
    }
  }
}
`, "tcp://127.0.0.1:9000"), "\t", "  ")
