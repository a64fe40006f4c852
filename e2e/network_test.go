// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/shoenig/test/must"
	"github.com/shoenig/test/wait"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

// netExample is one of the two ways a Wasm task serves the network: http
// mode (the driver serves, an instance per request) and command mode with
// a granted listener (the guest serves its own socket).
type netExample struct {
	name    string // subtest name
	file    string // in example-jobs
	task    string
	service string // the service on the port "http"
	checks  int    // the checks of that service
	// allocChecks counts the checks of all the group's services.
	allocChecks int
	// path is requested; body says whether the answer is the module's.
	path string
	body func(t *testing.T, got string)
	// httpMode: access log and metrics.
	httpMode bool
}

var netExamples = []netExample{
	{
		name: "http mode", file: "http.nomad.hcl", task: "greet", service: "greet", checks: 2, allocChecks: 3,
		path: "/world?x=1",
		body: func(t *testing.T, got string) {
			must.StrHasPrefix(t, "Hello from WebAssembly! You asked for /world", got)
			must.StrContains(t, got, "x=1")
		},
		httpMode: true,
	},
	{
		name: "listener", file: "listener.nomad.hcl", task: "serve", service: "listener", checks: 1, allocChecks: 1,
		path: "/world",
		body: func(t *testing.T, got string) {
			must.Eq(t, "Hello from a WebAssembly listener: /world\n", got)
		},
	},
}

// TestNetwork: Wasm tasks that serve the network (http mode and command
// mode with listeners) on a real Nomad client with Consul: service
// registration with the allocated address and port in Consul and in
// Nomad's own service registry, passing health checks, moves on updates
// and deregistration on stop; a Docker task beside a Wasm task, each
// reaching the other's service as discovered; bridge networking; nomad
// alloc exec on an http-mode task.
func TestNetwork(t *testing.T) {
	c := networkCluster(t)

	for _, ex := range netExamples {
		t.Run("consul/"+ex.name, func(t *testing.T) {
			job := c.exampleJob(t, ex.file, nil)
			c.register(t, job)
			alloc := c.waitAllocs(t, *job.ID, 1, status("running"))[0]
			event := "Granted listeners on the host's network: http on "
			if ex.httpMode {
				event = `Serving HTTP on `
			}
			c.waitEvent(t, alloc.ID, ex.task, event)

			// Registered in Consul with the allocation's address and port,
			// and its checks pass.
			addr := allocPort(t, alloc, "http")
			entry := c.waitConsulService(t, ex.service, alloc.ID, ex.checks)
			must.Eq(t, addr, net.JoinHostPort(entry.Service.Address, strconv.Itoa(entry.Service.Port)))
			must.Eq(t, entry.Service.Address, consulCatalogAddr(t, c, ex.service, entry.Service.ID))
			t.Logf("Consul: %s at %s:%d, checks passing; allocation %s has port http at %s", entry.Service.ID, entry.Service.Address, entry.Service.Port, alloc.ID, addr)

			// The address Consul gives reaches the module.
			ex.body(t, httpGet(t, "http://"+addr+ex.path))

			if ex.httpMode {
				// A line per request in the task's stdout log (flushed
				// every second), and Prometheus text on the metrics port,
				// registered as a service of its own.
				httpGet(t, "http://"+addr+"/access-log-probe")
				c.waitLogs(t, alloc, ex.task, "stdout", `"GET /access-log-probe HTTP/1.1" 200 `)
				metricsAddr := allocPort(t, alloc, "metrics")
				m := c.waitConsulService(t, "greet-metrics", alloc.ID, 1)
				must.Eq(t, metricsAddr, net.JoinHostPort(m.Service.Address, strconv.Itoa(m.Service.Port)))
				checkMetrics(t, "http://"+metricsAddr+"/metrics", 2)
			}

			// An update that replaces the allocation moves the
			// registration: the new allocation's is there, the old one's
			// gone.
			job.TaskGroups[0].Tasks[0].Env = map[string]string{"GENERATION": "2"}
			c.register(t, job)
			next := c.waitAllocs(t, *job.ID, 1, func(a *nomadapi.AllocationListStub) bool {
				return a.ID != alloc.ID && a.ClientStatus == "running"
			})[0]
			entry = c.waitConsulService(t, ex.service, next.ID, ex.checks)
			nextAddr := allocPort(t, next, "http")
			must.Eq(t, nextAddr, net.JoinHostPort(entry.Service.Address, strconv.Itoa(entry.Service.Port)))
			ex.body(t, httpGet(t, "http://"+nextAddr+ex.path))
			if ex.httpMode {
				c.waitConsulService(t, "greet-metrics", next.ID, 1)
			}
			t.Logf("after the update: Consul has only %s at %s (old allocation's port was %s)", entry.Service.ID, nextAddr, addr)
			waitErr(t, func() error {
				if old := c.taskState(t, alloc.ID, ex.task); old.State != "dead" {
					return fmt.Errorf("the replaced allocation's task is %s", old.State)
				}
				return nil
			})

			// Stopped and purged: deregistered.
			_, _, err := c.Nomad.Jobs().Deregister(*job.ID, true, nil)
			must.NoError(t, err)
			c.waitConsulGone(t, ex.service, "greet-metrics")
		})
	}

	for _, ex := range netExamples {
		t.Run("nomad/"+ex.name, func(t *testing.T) {
			job := c.exampleJob(t, ex.file, map[string]string{"provider": "nomad"})
			*job.ID += "-nomad"
			*job.Name = *job.ID
			c.register(t, job)
			alloc := c.waitAllocs(t, *job.ID, 1, status("running"))[0]
			addr := allocPort(t, alloc, "http")
			reg := c.waitNomadService(t, ex.service, alloc.ID)
			must.Eq(t, addr, net.JoinHostPort(reg.Address, strconv.Itoa(reg.Port)))
			t.Logf("Nomad services: %s at %s:%d", reg.ID, reg.Address, reg.Port)
			c.waitNomadChecks(t, alloc.ID, ex.allocChecks)
			ex.body(t, httpGet(t, "http://"+addr+ex.path))
			if ex.httpMode {
				m := c.waitNomadService(t, "greet-metrics", alloc.ID)
				checkMetrics(t, "http://"+net.JoinHostPort(m.Address, strconv.Itoa(m.Port))+"/metrics", 1)
			}

			_, _, err := c.Nomad.Jobs().Deregister(*job.ID, true, nil)
			must.NoError(t, err)
			waitErr(t, func() error {
				regs, _, err := c.Nomad.Services().Get(ex.service, nil)
				if err != nil {
					return err
				}
				if len(regs) > 0 {
					return fmt.Errorf("%s still registered in Nomad after the stop: %d registrations", ex.service, len(regs))
				}
				return nil
			})
		})
	}

	t.Run("alloc exec in http mode", func(t *testing.T) {
		job, alloc, addr := c.runGreet(t, "greet-exec")
		httpGet(t, "http://"+addr+"/before-exec")

		// nomad alloc exec runs the module as a command in the task's
		// sandbox (no request: its CGI variables are unset) and streams
		// its output back; the server goes on serving.
		code, stdout, stderr, err := c.exec(t, alloc, "greet", "/local/greet.wasm")
		must.NoError(t, err)
		must.Zero(t, code, must.Sprintf("stdout %q stderr %q", stdout, stderr))
		must.StrContains(t, stdout, "Content-Type: text/plain\n\nHello from WebAssembly! You asked for ")

		must.StrHasPrefix(t, "Hello from WebAssembly! You asked for /after-exec", httpGet(t, "http://"+addr+"/after-exec"))
		ts := c.taskState(t, alloc.ID, "greet")
		must.Eq(t, "running", ts.State)
		must.Zero(t, ts.Restarts)

		_, _, err = c.Nomad.Jobs().Deregister(*job.ID, true, nil)
		must.NoError(t, err)
	})

	t.Run("http mode survives a plugin kill and a client restart", func(t *testing.T) {
		job, alloc, addr := c.runGreet(t, "greet-survivor")
		httpGet(t, "http://"+addr+"/before")
		pid := executorPid(t, c, alloc)

		// The plugin dies: the executor serves on, and the new plugin
		// reattaches to it.
		killPlugin(t, c)
		must.StrHasPrefix(t, "Hello from WebAssembly! You asked for /after-plugin-kill", httpGet(t, "http://"+addr+"/after-plugin-kill"))

		// The client restarts: the same.
		c.RestartClient(t, 0, syscall.SIGINT)
		c.waitNodes(t, 1, func(*nomadapi.Node) bool { return true })
		must.StrHasPrefix(t, "Hello from WebAssembly! You asked for /after-client-restart", httpGet(t, "http://"+addr+"/after-client-restart"))
		must.Eq(t, pid, executorPid(t, c, alloc))
		ts := c.taskState(t, alloc.ID, "greet")
		must.Eq(t, "running", ts.State)
		must.Zero(t, ts.Restarts)

		// And it still stops: the executor exits.
		_, _, err := c.Nomad.Jobs().Deregister(*job.ID, true, nil)
		must.NoError(t, err)
		waitFor(t, func() bool { return executor.ProcessGone(pid) })
	})

	t.Run("docker beside wasm", func(t *testing.T) {
		requireDocker(t, c)
		job := c.parseJob(t, mixedNetworkJob, map[string]string{"artifact_url": c.ArtifactURL})
		c.register(t, job)
		alloc := c.waitAllocs(t, *job.ID, 1, status("running"))[0]

		wasm := c.waitConsulService(t, "mixed-wasm", alloc.ID, 1)
		wasmAddr := allocPort(t, alloc, "wasm")
		must.Eq(t, wasmAddr, net.JoinHostPort(wasm.Service.Address, strconv.Itoa(wasm.Service.Port)))
		docker := c.waitConsulService(t, "mixed-docker", alloc.ID, 1)
		dockerAddr := allocPort(t, alloc, "docker")
		must.Eq(t, dockerAddr, net.JoinHostPort(docker.Service.Address, strconv.Itoa(docker.Service.Port)))

		// Docker → Wasm: the template rendered the address Consul gives
		// for the Wasm service, and the container fetched from it.
		out := c.waitLogs(t, alloc, "client", "stdout", "Hello from WebAssembly!")
		t.Logf("docker task client's stdout:\n%s", out)
		must.StrContains(t, out, "GET http://"+wasmAddr+"/from-docker:\nHello from WebAssembly! You asked for /from-docker")
		// The test → Docker, through the address Consul gives.
		must.Eq(t, "Hello from a Docker task: /from-test\n", httpGet(t, "http://"+dockerAddr+"/from-test"))
		// (Wasm → Docker, under outbound rules: TestOutbound.)

		_, _, err := c.Nomad.Jobs().Deregister(*job.ID, true, nil)
		must.NoError(t, err)
	})

	t.Run("bridge", func(t *testing.T) {
		node := requireDocker(t, c)
		for _, p := range []string{"bridge", "portmap", "firewall", "host-local", "loopback"} {
			if node.Attributes["plugins.cni.version."+p] == "" {
				t.Fatalf("the client found no CNI plugin %q in its cni_path: bridge networking needs the CNI plugins (Debian: containernetworking-plugins in /usr/lib/cni)", p)
			}
		}
		job := c.exampleJob(t, "bridge.nomad.hcl", nil)
		c.register(t, job)
		allocs := c.waitAllocs(t, *job.ID, 2, status("running"))
		byGroup := map[string]*nomadapi.Allocation{}
		for _, a := range allocs {
			byGroup[a.TaskGroup] = a
		}

		t.Run("listener with docker over localhost", func(t *testing.T) {
			alloc := byGroup["listener"]
			must.NotNil(t, alloc)
			c.waitEvent(t, alloc.ID, "serve", "Granted listeners in the allocation's network namespace: http on 0.0.0.0:8080 as WASM_LISTENER_HTTP")
			// With a Docker task in the group, the docker driver created
			// the namespace (its infra container holds it).
			must.StrContains(t, strings.Join(networkLeft(alloc.ID), "\n"), "infra container ")
			hostAddr := bridgePort(t, alloc, "http", 8080)
			entry := c.waitConsulService(t, "bridge-listener", alloc.ID, 1)
			must.Eq(t, hostAddr, net.JoinHostPort(entry.Service.Address, strconv.Itoa(entry.Service.Port)))
			// Through the mapped host port, and on the allocation's own
			// address inside the bridge.
			must.Eq(t, "Hello from a WebAssembly listener: /mapped\n", httpGet(t, "http://"+hostAddr+"/mapped"))
			must.Eq(t, "Hello from a WebAssembly listener: /direct\n", httpGet(t, "http://"+allocAddr(t, alloc, 8080)+"/direct"))
			// The Docker task of the group reached it over the namespace's
			// loopback.
			out := c.waitLogs(t, alloc, "client", "stdout", "GET http://127.0.0.1:8080/from-docker:\nHello from a WebAssembly listener: /from-docker\n")
			t.Logf("host port %s, allocation address %s; docker task client's stdout:\n%s", hostAddr, alloc.NetworkStatus.Address, out)
		})

		t.Run("http mode", func(t *testing.T) {
			alloc := byGroup["http"]
			must.NotNil(t, alloc)
			c.waitEvent(t, alloc.ID, "greet", `Serving HTTP on 0.0.0.0:8080 (port "http") in the allocation's network namespace`)
			// Without one, Nomad created it.
			must.SliceContains(t, networkLeft(alloc.ID), "/var/run/netns/"+alloc.ID)
			hostAddr := bridgePort(t, alloc, "http", 8080)
			entry := c.waitConsulService(t, "bridge-http", alloc.ID, 1)
			must.Eq(t, hostAddr, net.JoinHostPort(entry.Service.Address, strconv.Itoa(entry.Service.Port)))
			must.StrHasPrefix(t, "Hello from WebAssembly! You asked for /mapped", httpGet(t, "http://"+hostAddr+"/mapped"))
			must.StrHasPrefix(t, "Hello from WebAssembly! You asked for /direct", httpGet(t, "http://"+allocAddr(t, alloc, 8080)+"/direct"))
			c.waitLogs(t, alloc, "greet", "stdout", `"GET /mapped HTTP/1.1" 200 `)
			checkMetrics(t, "http://"+bridgePort(t, alloc, "metrics", 9090)+"/metrics", 2)
		})

		_, _, err := c.Nomad.Jobs().Deregister(*job.ID, true, nil)
		must.NoError(t, err)
		// The client tears the networks down: the infra container, the
		// namespace, CNI's state.
		for _, a := range allocs {
			waitErr(t, func() error {
				if left := networkLeft(a.ID); len(left) > 0 {
					return fmt.Errorf("allocation %s (group %s) stopped but its network is still there: %v", a.ID, a.TaskGroup, left)
				}
				return nil
			})
		}
		c.waitConsulGone(t, "bridge-listener", "bridge-http")
	})
}

// mixedNetworkJob: in one group (host networking), a Wasm task in http
// mode and a Docker task that serves HTTP, both registered in Consul, and
// a Docker task that fetches from the Wasm service at the address Consul
// gives (a template renders it into its environment).
const mixedNetworkJob = `
variable "artifact_url" {
  type = string
}

job "mixed-net" {
  type = "service"

  group "g" {
    network {
      port "wasm" {}
      port "docker" {}
    }

    service {
      name = "mixed-wasm"
      port = "wasm"
      check {
        type     = "http"
        path     = "/health"
        interval = "2s"
        timeout  = "1s"
      }
    }

    service {
      name = "mixed-docker"
      port = "docker"
      check {
        type     = "http"
        path     = "/health"
        interval = "2s"
        timeout  = "1s"
      }
    }

    task "greet" {
      driver = "wasm"
      artifact {
        source      = "${var.artifact_url}/greet.wasm"
        destination = "local/"
      }
      config {
        module = "local/greet.wasm"
        http {
          port = "wasm"
        }
      }
      resources {
        cpu    = 100
        memory = 32
      }
    }

    task "web" {
      driver = "docker"
      config {
        image      = "wasm-e2e/sidecar:1"
        force_pull = false
        ports      = ["docker"]
        args       = ["serve", "${NOMAD_PORT_docker}"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }

    task "client" {
      driver = "docker"
      # Rendered once Consul has a healthy instance of the Wasm service.
      template {
        data        = "WASM_ADDR={{ range service \"mixed-wasm\" }}{{ .Address }}:{{ .Port }}{{ end }}\n"
        destination = "local/wasm.env"
        env         = true
      }
      config {
        image      = "wasm-e2e/sidecar:1"
        force_pull = false
        # The agents advertise loopback addresses (network_interface =
        # "lo"), which a container reaches only from the host's network.
        network_mode = "host"
        args         = ["get", "http://${WASM_ADDR}/from-docker"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
`

// networkCluster starts a single-client cluster that tears the
// allocations' networks down before its agents stop.
func networkCluster(t *testing.T) *Cluster {
	t.Helper()
	c := StartCluster(t)
	// Before the agents stop (cleanups run last registered first): stop
	// every job and wait until the client has torn down the allocations'
	// networks. An agent stopped sooner leaves bridge networks behind on
	// the host (CNI's iptables rules and address leases, the network
	// namespace, the Docker infra container), even when a test failed.
	t.Cleanup(func() {
		stubs, _, err := c.Nomad.Allocations().List(nil)
		if err != nil {
			t.Errorf("list allocations: %v", err)
			return
		}
		jobs := map[string]bool{}
		for _, s := range stubs {
			jobs[s.JobID] = true
		}
		for id := range jobs {
			if _, _, err := c.Nomad.Jobs().Deregister(id, true, nil); err != nil {
				t.Errorf("stop job %s: %v", id, err)
			}
		}
		err = wait.InitialSuccess(wait.ErrorFunc(func() error {
			for _, s := range stubs {
				if left := networkLeft(s.ID); len(left) > 0 {
					return fmt.Errorf("allocation %s (job %s) left %v", s.ID, s.JobID, left)
				}
			}
			return nil
		}), wait.Timeout(60*time.Second), wait.Gap(250*time.Millisecond)).Run()
		if err != nil {
			t.Errorf("networks not torn down after the jobs stopped: %v", err)
		}
	})
	return c
}

// networkLeft lists what is left on the host of an allocation's bridge
// network: its Docker infra container, its network namespace (when Nomad
// created it), CNI's cached result (removed by a completed CNI DEL).
func networkLeft(allocID string) []string {
	var left []string
	// Without a Docker engine there is no infra container to wait for.
	if out, err := exec.Command("docker", "ps", "-aq", "--filter", "name=nomad_init_"+allocID).Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		left = append(left, "infra container "+strings.TrimSpace(string(out)))
	}
	for _, p := range []string{"/var/run/netns/" + allocID, "/var/lib/cni/results/nomad-" + allocID + "-eth0"} {
		if _, err := os.Stat(p); err == nil {
			left = append(left, p)
		}
	}
	return left
}

// requireDocker fails the test unless the client's docker driver is
// healthy (a prerequisite, never a reason to skip), and returns the node.
func requireDocker(t *testing.T, c *Cluster) *nomadapi.Node {
	t.Helper()
	nodes := c.waitNodes(t, 1, func(*nomadapi.Node) bool { return true })
	if d := nodes[0].Drivers["docker"]; d == nil || !d.Healthy {
		t.Fatalf("the docker driver is not healthy on the client (%+v): the e2e tests need a running Docker engine", d)
	}
	return nodes[0]
}

// waitEvent waits for a task event whose message contains want.
func (c *Cluster) waitEvent(t *testing.T, allocID, task, want string) {
	t.Helper()
	waitErr(t, func() error {
		if ts := c.taskState(t, allocID, task); !hasEvent(ts, want) {
			return fmt.Errorf("task %s has no event %q yet:\n%s", task, want, eventList(ts))
		}
		return nil
	})
}

// waitErr polls f until it returns nil, failing with its last error after
// a minute.
func waitErr(t *testing.T, f func() error) {
	t.Helper()
	must.Wait(t, wait.InitialSuccess(wait.ErrorFunc(f), wait.Timeout(60*time.Second), wait.Gap(250*time.Millisecond)))
}

// allocPort is host:port of a port label of a host-networking allocation,
// as Nomad allocated it.
func allocPort(t *testing.T, alloc *nomadapi.Allocation, label string) string {
	t.Helper()
	p := portMapping(t, alloc, label)
	must.NotEq(t, "", p.HostIP)
	return net.JoinHostPort(p.HostIP, strconv.Itoa(p.Value))
}

// bridgePort is the host:port mapped to port to of a bridge-networking
// allocation's label.
func bridgePort(t *testing.T, alloc *nomadapi.Allocation, label string, to int) string {
	t.Helper()
	p := portMapping(t, alloc, label)
	must.Eq(t, to, p.To, must.Sprintf("port %s maps to %d", label, p.To))
	return net.JoinHostPort(p.HostIP, strconv.Itoa(p.Value))
}

func portMapping(t *testing.T, alloc *nomadapi.Allocation, label string) nomadapi.PortMapping {
	t.Helper()
	must.NotNil(t, alloc.AllocatedResources)
	must.NotNil(t, alloc.AllocatedResources.Shared)
	for _, p := range alloc.AllocatedResources.Shared.Ports {
		if p.Label == label {
			return p
		}
	}
	t.Fatalf("allocation %s has no port %q: %+v", alloc.ID, label, alloc.AllocatedResources.Shared.Ports)
	return nomadapi.PortMapping{}
}

// allocAddr is the bridge-networking allocation's own address (in
// Nomad's bridge) with port.
func allocAddr(t *testing.T, alloc *nomadapi.Allocation, port int) string {
	t.Helper()
	must.NotNil(t, alloc.NetworkStatus, must.Sprint("no network status"))
	must.NotEq(t, "", alloc.NetworkStatus.Address)
	return net.JoinHostPort(alloc.NetworkStatus.Address, strconv.Itoa(port))
}

// waitConsulService waits until Consul's health endpoint has exactly one
// instance of the service, that instance is the allocation's, and its n
// checks all pass; it returns that instance.
func (c *Cluster) waitConsulService(t *testing.T, name, allocID string, n int) *consulapi.ServiceEntry {
	t.Helper()
	var got *consulapi.ServiceEntry
	waitErr(t, func() error {
		entries, _, err := c.Consul.Health().Service(name, "", false, nil)
		if err != nil {
			return err
		}
		if len(entries) != 1 {
			var ids []string
			for _, e := range entries {
				ids = append(ids, e.Service.ID)
			}
			return fmt.Errorf("%d instances of %s in Consul, want 1 (of allocation %s): %v", len(entries), name, allocID, ids)
		}
		e := entries[0]
		if !strings.Contains(e.Service.ID, allocID) {
			return fmt.Errorf("the instance of %s in Consul is %s, not allocation %s's", name, e.Service.ID, allocID)
		}
		var checks []string
		passing := 0
		for _, ch := range e.Checks {
			if ch.ServiceID == "" {
				continue // the node's serfHealth
			}
			checks = append(checks, fmt.Sprintf("%s (%s): %s %q", ch.Name, ch.Type, ch.Status, ch.Output))
			if ch.Status == consulapi.HealthPassing {
				passing++
			}
		}
		if len(checks) != n || passing != n {
			return fmt.Errorf("%s: want %d passing checks, have %v", name, n, checks)
		}
		got = e
		return nil
	})
	return got
}

// consulCatalogAddr is the address the catalog has for a service
// instance.
func consulCatalogAddr(t *testing.T, c *Cluster, name, id string) string {
	t.Helper()
	entries, _, err := c.Consul.Catalog().Service(name, "", nil)
	must.NoError(t, err)
	for _, e := range entries {
		if e.ServiceID == id {
			return e.ServiceAddress
		}
	}
	t.Fatalf("no %s in the catalog's %s: %s", id, name, catalogIDs(entries))
	return ""
}

// waitConsulGone waits until Consul's catalog holds none of the services.
func (c *Cluster) waitConsulGone(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		waitErr(t, func() error {
			entries, _, err := c.Consul.Catalog().Service(name, "", nil)
			if err != nil {
				return err
			}
			if len(entries) > 0 {
				return fmt.Errorf("%s still in the catalog after the stop: %s", name, catalogIDs(entries))
			}
			return nil
		})
	}
}

func catalogIDs(entries []*consulapi.CatalogService) string {
	var ids []string
	for _, e := range entries {
		ids = append(ids, fmt.Sprintf("%s at %s:%d", e.ServiceID, e.ServiceAddress, e.ServicePort))
	}
	return strings.Join(ids, ", ")
}

// waitNomadService waits until Nomad's service registry has exactly one
// registration of the service, the allocation's, and returns it.
func (c *Cluster) waitNomadService(t *testing.T, name, allocID string) *nomadapi.ServiceRegistration {
	t.Helper()
	var got *nomadapi.ServiceRegistration
	waitErr(t, func() error {
		regs, _, err := c.Nomad.Services().Get(name, nil)
		if err != nil {
			return err
		}
		if len(regs) != 1 || regs[0].AllocID != allocID {
			var have []string
			for _, r := range regs {
				have = append(have, fmt.Sprintf("%s at %s:%d", r.AllocID, r.Address, r.Port))
			}
			return fmt.Errorf("registrations of %s in Nomad: %v, want one of allocation %s", name, have, allocID)
		}
		got = regs[0]
		return nil
	})
	return got
}

// waitNomadChecks waits until the allocation's n Nomad service checks
// all succeed.
func (c *Cluster) waitNomadChecks(t *testing.T, allocID string, n int) {
	t.Helper()
	waitErr(t, func() error {
		checks, err := c.Nomad.Allocations().Checks(allocID, nil)
		if err != nil {
			return err
		}
		var have []string
		ok := 0
		for _, ch := range checks {
			have = append(have, fmt.Sprintf("%s/%s: %s %q", ch.Service, ch.Check, ch.Status, ch.Output))
			if ch.Status == "success" {
				ok++
			}
		}
		sort.Strings(have)
		if len(checks) != n || ok != n {
			return fmt.Errorf("want %d successful checks, have %v", n, have)
		}
		return nil
	})
}

// httpGet polls url until it answers 200 and returns the body.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	return httpStatus(t, url, http.StatusOK)
}

// httpStatus gets url until it answers with status code, and returns its
// body.
func httpStatus(t *testing.T, url string, code int) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	var body string
	waitErr(t, func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != code {
			return fmt.Errorf("GET %s: %s: %q", url, resp.Status, b)
		}
		body = string(b)
		return nil
	})
	return body
}

// checkMetrics reads the Prometheus text at url and checks that
// wasm_http_requests_total is a counter whose 2xx series is at least min.
func checkMetrics(t *testing.T, url string, min int) {
	t.Helper()
	text := httpGet(t, url)
	var typ string
	count := -1
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" && f[2] == "wasm_http_requests_total" {
			typ = f[3]
		}
		series, value, ok := strings.Cut(line, " ")
		if ok && series == `wasm_http_requests_total{code="2xx"}` {
			n, err := strconv.Atoi(value)
			must.NoError(t, err, must.Sprint(line))
			count = n
		}
	}
	must.Eq(t, "counter", typ, must.Sprint(text))
	must.GreaterEq(t, min, count, must.Sprint(text))
}

// runGreet runs the http example (Nomad services) as job id and returns
// the job, its running allocation and the address of its http port.
func (c *Cluster) runGreet(t *testing.T, id string) (*nomadapi.Job, *nomadapi.Allocation, string) {
	t.Helper()
	job := c.exampleJob(t, "http.nomad.hcl", map[string]string{"provider": "nomad"})
	*job.ID = id
	*job.Name = id
	c.register(t, job)
	alloc := c.waitAllocs(t, id, 1, status("running"))[0]
	return job, alloc, allocPort(t, alloc, "http")
}
