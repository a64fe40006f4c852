// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/shoenig/test/must"
	"github.com/shoenig/test/wait"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// repoRoot is the repository's top directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	must.NoError(t, err)
	return dir
}

// agentBinary returns the path of an agent put in place by e2e/agents.sh.
func agentBinary(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), ".tools", "agents", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s agent not found at %s: run make tools first (%v)", name, p, err)
	}
	return p
}

var (
	pluginOnce sync.Once
	pluginDir  string
	pluginErr  error
)

// pluginBinaryDir builds the plugin once per test run into a directory used
// as the clients' plugin_dir. Its path is unique to the run, which is how
// teardown recognises the run's executor processes.
func pluginBinaryDir(t testing.TB) string {
	t.Helper()
	pluginOnce.Do(func() {
		pluginDir, pluginErr = os.MkdirTemp("", "wasm-e2e-plugins-")
		if pluginErr != nil {
			return
		}
		// As make build builds it: with the executor program embedded.
		cmd := exec.Command("executor/embedded/build.sh", filepath.Join(pluginDir, "nomad-driver-wasm"))
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			pluginErr = fmt.Errorf("build plugin: %w\n%s", err, out)
		}
	})
	must.NoError(t, pluginErr)
	return pluginDir
}

// Agents' ports come from agentPorts, a range that neither the kernel's
// ephemeral ports (32768 and up by default) nor Nomad's dynamic ports
// (20000–32000) overlap: a port the kernel chose (a listen on port 0) and
// the test released could be taken, before the agent bound it, by another
// process's outgoing connection (a Consul agent once failed to start so),
// and one of Nomad's dynamic ports by a task.
const (
	agentPortsLow  = 10000
	agentPortsHigh = 20000
)

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// freePort returns a TCP port free on addr, from the agents' range, and
// never the same twice in a run.
func freePort(t testing.TB, addr string) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := agentPortsLow + rand.IntN(agentPortsHigh-agentPortsLow)
		if portsGiven[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(p)))
		if err != nil {
			continue
		}
		_ = l.Close()
		portsGiven[p] = true
		return p
	}
	t.Fatalf("no free port on %s in [%d, %d) after 1000 tries", addr, agentPortsLow, agentPortsHigh)
	return 0
}

// agent is one agent process.
type agent struct {
	name    string
	cmd     *exec.Cmd
	dir     string
	logFile string
	args    []string
	// env is the agent's environment; nil: this process's.
	env  []string
	bin  string
	done chan struct{}
}

func (a *agent) start(t testing.TB) {
	t.Helper()
	log, err := os.OpenFile(a.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	must.NoError(t, err)
	a.cmd = exec.Command(a.bin, a.args...)
	a.cmd.Env = a.env
	a.cmd.Stdout, a.cmd.Stderr = log, log
	// A process group of its own, so that teardown can end the agent and
	// everything it started that stayed in its group.
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	must.NoError(t, a.cmd.Start())
	a.done = make(chan struct{})
	go func() {
		_ = a.cmd.Wait()
		_ = log.Close()
		close(a.done)
	}()
}

// stop ends the agent with sig and waits for it to exit.
func (a *agent) stop(sig syscall.Signal) {
	if a.cmd == nil || a.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-a.cmd.Process.Pid, sig)
	select {
	case <-a.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.done
	}
}

// ClientOptions describes one Nomad client of a cluster.
type ClientOptions struct {
	// Addr is the loopback address the client binds, e.g. 127.0.0.2.
	Addr string
	// NoPlugin leaves the wasm plugin out of this client.
	NoPlugin bool
	// SharedExecutor sets the plugin's shared_executor = true.
	SharedExecutor bool
	// InsecureRegistries sets the plugin's insecure_registries.
	InsecureRegistries []string
	// AllowedHostPaths sets the plugin's allowed_host_paths.
	AllowedHostPaths []string
	// HostVolumes are the client's host_volume blocks: name to path.
	HostVolumes map[string]string
}

// Cluster is a Consul agent, a Nomad server and Nomad clients.
type Cluster struct {
	t       testing.TB
	dir     string
	plugins string
	consul  *agent
	server  *agent
	clients []*agent
	// clientConfig keeps what restarting a client needs.
	clientHTTP []string

	Nomad  *nomadapi.Client
	Consul *consulapi.Client
	// CacheDir is the wasm plugin's cache_dir on every client.
	CacheDir string
	// ArtifactURL serves the built example modules to artifact blocks.
	ArtifactURL string
	// ArtifactDir is the directory ArtifactURL serves: a test may add
	// modules of its own.
	ArtifactDir string

	// seen holds the IDs of the allocations the tests waited on: a job
	// deregistered with purge is gone from the server, and its directories
	// from the client, before the teardown looks for its cgroups.
	seenMu sync.Mutex
	seen   map[string]bool
}

// sawAlloc records an allocation of the cluster's (see seen).
func (c *Cluster) sawAlloc(id string) {
	c.seenMu.Lock()
	defer c.seenMu.Unlock()
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	c.seen[id] = true
}

// StartCluster starts Consul, a Nomad server and the given clients (one
// client on 127.0.0.1 with the plugin when none are given), and waits until
// every client is ready and the wasm driver healthy where it is loaded.
func StartCluster(t testing.TB, clients ...ClientOptions) *Cluster {
	t.Helper()
	if len(clients) == 0 {
		clients = []ClientOptions{{Addr: "127.0.0.1"}}
	}
	// Built first: a build that fails leaves no cluster directory behind.
	plugins := pluginBinaryDir(t)
	// Short, so that unix socket paths below it stay within their limit.
	// A short name: Nomad binds unix sockets below the clients' data_dirs
	// (a Connect group's alloc/<id>/alloc/tmp/consul_grpc.sock), and a
	// socket's path must fit 107 bytes.
	dir, err := os.MkdirTemp("", "we-")
	must.NoError(t, err)
	// Traversable by the tasks' user (nobody), for the wasm cache_dir
	// below it; a temp dir is 0700. The agents' data_dirs are not: each
	// is made by its agent, 0700, in a 0700 directory (see nomadAgent).
	must.NoError(t, os.Chmod(dir, 0o711))
	c := &Cluster{t: t, dir: dir, plugins: plugins, CacheDir: filepath.Join(dir, "wasm-cache")}
	t.Cleanup(c.teardown)
	c.ArtifactURL, c.ArtifactDir = serveArtifacts(t)

	consulHTTP := freePort(t, "127.0.0.1")
	// Connect (on in -dev) needs the gRPC port: Nomad places a group with
	// a sidecar only where Consul has one. Every port is a free one: -dev
	// would take 8503 for gRPC with TLS, which the agent of the test
	// before may still hold while it exits.
	c.consul = &agent{name: "consul", bin: agentBinary(t, "consul"), dir: filepath.Join(dir, "consul"), logFile: filepath.Join(dir, "consul.log"),
		args: []string{"agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
			"-http-port", strconv.Itoa(consulHTTP), "-dns-port", "-1", "-grpc-port", strconv.Itoa(freePort(t, "127.0.0.1")),
			"-grpc-tls-port", strconv.Itoa(freePort(t, "127.0.0.1")),
			"-serf-lan-port", strconv.Itoa(freePort(t, "127.0.0.1")), "-serf-wan-port", strconv.Itoa(freePort(t, "127.0.0.1")),
			"-server-port", strconv.Itoa(freePort(t, "127.0.0.1"))}}
	c.consul.start(t)
	c.Consul, err = consulapi.NewClient(&consulapi.Config{Address: fmt.Sprintf("127.0.0.1:%d", consulHTTP)})
	must.NoError(t, err)
	must.Wait(t, wait.InitialSuccess(wait.ErrorFunc(func() error {
		leader, err := c.Consul.Status().Leader()
		if err == nil && leader == "" {
			err = fmt.Errorf("no leader")
		}
		return err
	}), wait.Timeout(60*time.Second), wait.Gap(100*time.Millisecond)))

	serverRPC := freePort(t, "127.0.0.1")
	serverHTTP := freePort(t, "127.0.0.1")
	c.server = c.nomadAgent(t, "server", nomadConfig{
		Addr: "127.0.0.1", HTTP: serverHTTP, RPC: serverRPC, Serf: freePort(t, "127.0.0.1"),
		Server: true, ConsulAddr: fmt.Sprintf("127.0.0.1:%d", consulHTTP),
	})
	c.Nomad, err = nomadapi.NewClient(&nomadapi.Config{Address: fmt.Sprintf("http://127.0.0.1:%d", serverHTTP)})
	must.NoError(t, err)
	// A client that registers before the server has a leader and an active
	// root key is refused ("keyring has not been initialized yet") and
	// retries only after a back-off of about 20 s.
	must.Wait(t, wait.InitialSuccess(wait.ErrorFunc(func() error {
		keys, _, err := c.Nomad.Keyring().List(nil)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if k.State == nomadapi.RootKeyStateActive {
				return nil
			}
		}
		return fmt.Errorf("no active root key yet: %d keys", len(keys))
	}), wait.Timeout(60*time.Second), wait.Gap(100*time.Millisecond)))

	for i, opts := range clients {
		cfg := nomadConfig{
			Addr: opts.Addr, HTTP: freePort(t, opts.Addr), RPC: freePort(t, opts.Addr), Serf: freePort(t, opts.Addr),
			Servers: fmt.Sprintf("127.0.0.1:%d", serverRPC), ConsulAddr: fmt.Sprintf("127.0.0.1:%d", consulHTTP),
			// The tests' Connect sidecars are Consul's built-in proxy
			// (no Envoy image can be had here), which talks to its agent
			// over HTTP; Nomad hands a sidecar in its allocation's
			// namespace one way to the agent, a socket to what
			// grpc_address names (Envoy's xDS in production): here the
			// agent's HTTP port. See TestServiceMesh.
			ConsulGRPCAddr: fmt.Sprintf("127.0.0.1:%d", consulHTTP),
			Plugin:         !opts.NoPlugin, PluginDir: c.plugins, CacheDir: c.CacheDir, SharedExecutor: opts.SharedExecutor,
			InsecureRegistries: opts.InsecureRegistries, AllowedHostPaths: opts.AllowedHostPaths, HostVolumes: opts.HostVolumes,
			Name: fmt.Sprintf("client-%d", i),
		}
		c.clients = append(c.clients, c.nomadAgent(t, cfg.Name, cfg))
		c.clientHTTP = append(c.clientHTTP, fmt.Sprintf("http://%s:%d", opts.Addr, cfg.HTTP))
	}
	c.waitNodes(t, len(clients), func(n *nomadapi.Node) bool { return true })
	// The clients run with data_dirs as Nomad makes them: a data_dir made
	// beforehand, reachable by the tasks' user, would hide what a real
	// client breaks.
	for _, a := range c.clients {
		info, err := os.Stat(nomadDataDir(a.dir))
		must.NoError(t, err)
		must.EqOp(t, fs.FileMode(0o700), info.Mode().Perm(), must.Sprintf("mode of %s's data_dir %s", a.name, nomadDataDir(a.dir)))
	}
	return c
}

type nomadConfig struct {
	Name, Addr          string
	HTTP, RPC, Serf     int
	Server              bool
	Servers, ConsulAddr string
	ConsulGRPCAddr      string
	Plugin              bool
	SharedExecutor      bool
	InsecureRegistries  []string
	AllowedHostPaths    []string
	HostVolumes         map[string]string
	PluginDir, CacheDir string
	DataDir             string
}

var nomadTemplate = template.Must(template.New("nomad").Parse(`
name      = "{{.Name}}"
data_dir  = "{{.DataDir}}"
bind_addr = "{{.Addr}}"
log_level = "DEBUG"
disable_update_check = true
ports {
  http = {{.HTTP}}
  rpc  = {{.RPC}}
  serf = {{.Serf}}
}
advertise {
  http = "{{.Addr}}"
  rpc  = "{{.Addr}}"
  serf = "{{.Addr}}"
}
consul {
  address = "{{.ConsulAddr}}"
{{- if .ConsulGRPCAddr}}
  grpc_address = "{{.ConsulGRPCAddr}}"
{{- end}}
}
{{if .Server}}
server {
  enabled          = true
  bootstrap_expect = 1
}
{{else}}
client {
  enabled = true
  servers = ["{{.Servers}}"]
  # Loopback only: the node's address, and so its tasks' ports and the
  # services registered for them, is 127.0.0.1, never the machine's own.
  network_interface = "lo"
  options {
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }
  # Bridge networking (network { mode = "bridge" }): the CNI plugins of
  # Debian's containernetworking-plugins.
  cni_path = "/usr/lib/cni"
{{- range $name, $path := .HostVolumes}}
  host_volume "{{$name}}" {
    path = "{{$path}}"
  }
{{- end}}
}
# Nomad collects task stats (nomad alloc status -stats) only when it
# publishes allocation metrics.
telemetry {
  publish_allocation_metrics = true
  collection_interval        = "1s"
}
plugin_dir = "{{.PluginDir}}"
plugin "raw_exec" {
  config {
    enabled = true
  }
}
# There is no registry: the infra (pause) container of Docker tasks in
# bridge networking is a local image (make -C example-jobs image), and the
# client must not remove the locally built images once unused.
plugin "docker" {
  config {
    infra_image = "wasm-e2e/pause:1"
    gc {
      image = false
    }
  }
}
{{if .Plugin}}
plugin "nomad-driver-wasm" {
  config {
    cache_dir = "{{.CacheDir}}"
{{- if .SharedExecutor}}
    shared_executor = true
{{- end}}
{{- if .InsecureRegistries}}
    insecure_registries = [{{range $i, $r := .InsecureRegistries}}{{if $i}}, {{end}}"{{$r}}"{{end}}]
{{- end}}
{{- if .AllowedHostPaths}}
    allowed_host_paths = [{{range $i, $r := .AllowedHostPaths}}{{if $i}}, {{end}}"{{$r}}"{{end}}]
{{- end}}
    logs {
      collector = "executor"
      max_files = 5
    }
    # Tasks may connect to loopback only (their own rules say where).
    outbound {
      allow = ["tcp://127.0.0.0/8:*"]
    }
  }
}
{{end}}
{{end}}
`))

// nomadDataDir is the data_dir of the Nomad agent whose directory is dir.
func nomadDataDir(dir string) string { return filepath.Join(dir, "data") }

func (c *Cluster) nomadAgent(t testing.TB, name string, cfg nomadConfig) *agent {
	t.Helper()
	// The data_dir does not exist yet: Nomad makes it, 0700, as on a real
	// client. Below it the tasks' user reaches nothing by path: an
	// executor that runs as that user works only through the descriptors
	// it opened before it became that user. Its parent is 0700 and root's.
	dir := filepath.Join(c.dir, name)
	must.NoError(t, os.Mkdir(dir, 0o700))
	cfg.DataDir = nomadDataDir(dir)
	var buf bytes.Buffer
	must.NoError(t, nomadTemplate.Execute(&buf, cfg))
	file := filepath.Join(dir, "agent.hcl")
	must.NoError(t, os.WriteFile(file, buf.Bytes(), 0o644))
	a := &agent{name: name, bin: agentBinary(t, "nomad"), dir: dir, logFile: filepath.Join(c.dir, name+".log"),
		args: []string{"agent", "-config", file},
		// A client runs consul (connect envoy -bootstrap) for a Connect
		// sidecar: the one the tests built.
		env: append(os.Environ(), "PATH="+filepath.Dir(agentBinary(t, "consul"))+":"+os.Getenv("PATH"))}
	a.start(t)
	return a
}

// waitNodes waits until n client nodes are ready and, where the plugin is
// loaded, the wasm driver healthy.
func (c *Cluster) waitNodes(t testing.TB, n int, extra func(*nomadapi.Node) bool) []*nomadapi.Node {
	t.Helper()
	var ready []*nomadapi.Node
	must.Wait(t, wait.InitialSuccess(wait.ErrorFunc(func() error {
		stubs, _, err := c.Nomad.Nodes().List(nil)
		if err != nil {
			return err
		}
		ready = ready[:0]
		for _, s := range stubs {
			if s.Status != "ready" {
				continue
			}
			node, _, err := c.Nomad.Nodes().Info(s.ID, nil)
			if err != nil {
				return err
			}
			if d, ok := node.Drivers["wasm"]; ok && !d.Healthy {
				return fmt.Errorf("wasm driver on %s: %s", node.Name, d.HealthDescription)
			}
			if extra(node) {
				ready = append(ready, node)
			}
		}
		if len(ready) != n {
			return fmt.Errorf("%d of %d nodes ready", len(ready), n)
		}
		return nil
	}), wait.Timeout(120*time.Second), wait.Gap(250*time.Millisecond)))
	sort.Slice(ready, func(i, j int) bool { return ready[i].Name < ready[j].Name })
	return ready
}

// RestartClient stops client i with sig (SIGINT for a graceful stop,
// SIGKILL for a crash) and starts it again with the same configuration.
func (c *Cluster) RestartClient(t testing.TB, i int, sig syscall.Signal) {
	t.Helper()
	a := c.clients[i]
	a.stop(sig)
	a.start(t)
}

// PluginPids returns the pids of the wasm plugin processes (not executors)
// of this test run.
func (c *Cluster) PluginPids(t testing.TB) []int {
	t.Helper()
	var pids []int
	for _, p := range runProcesses(c.plugins) {
		if !strings.Contains(p.cmdline, "wasm-executor") {
			pids = append(pids, p.pid)
		}
	}
	return pids
}

type process struct {
	pid     int
	cmdline string
}

// processes lists the processes other than this one that match.
func processes(match func(proc string) bool) []process {
	entries, _ := os.ReadDir("/proc")
	var ps []process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		proc := filepath.Join("/proc", e.Name())
		if err != nil || pid == os.Getpid() || !match(proc) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(proc, "cmdline"))
		ps = append(ps, process{pid: pid, cmdline: strings.ReplaceAll(string(cmdline), "\x00", " ")})
	}
	return ps
}

// runProcesses lists the processes running a binary from dir, and the
// executors started from the executor program that such a binary embeds
// (which run a memfd, with the plugin binary's path as argv[0]).
func runProcesses(dir string) []process {
	return processes(func(proc string) bool {
		exe, err := os.Readlink(filepath.Join(proc, "exe"))
		if err != nil {
			return false
		}
		if strings.HasPrefix(exe, "/memfd:") {
			cmdline, _ := os.ReadFile(filepath.Join(proc, "cmdline"))
			exe, _, _ = strings.Cut(string(cmdline), "\x00")
		}
		return strings.HasPrefix(exe, dir+"/")
	})
}

// processesUsing lists the processes with a working directory or an open
// file below dir.
func processesUsing(dir string) []process {
	return processes(func(proc string) bool {
		links, _ := readLinks(filepath.Join(proc, "fd"))
		if cwd, err := os.Readlink(filepath.Join(proc, "cwd")); err == nil {
			links = append(links, cwd)
		}
		for _, l := range links {
			if strings.HasPrefix(l, dir+"/") {
				return true
			}
		}
		return false
	})
}

// teardown stops every agent and every process of the run, unmounts what
// the clients mounted and removes the cluster's directory.
func (c *Cluster) teardown() {
	for _, a := range c.clients {
		a.stop(syscall.SIGINT)
	}
	if c.server != nil {
		c.server.stop(syscall.SIGINT)
	}
	if c.consul != nil {
		c.consul.stop(syscall.SIGINT)
	}
	// Executors, and Nomad's logmon and docker_logger, live in sessions of
	// their own: they outlive the agents.
	leftovers := func() []process {
		return append(runProcesses(c.plugins), processesUsing(c.dir)...)
	}
	for _, p := range leftovers() {
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
	// Containers of the run's Docker tasks outlive the agents too.
	c.removeContainers()
	deadline := time.Now().Add(10 * time.Second)
	for len(leftovers()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if ps := leftovers(); len(ps) > 0 {
		c.t.Errorf("processes left after teardown: %v", ps)
	}
	// Read once the clients have stopped: an allocation placed during the
	// teardown has its directory, and its cgroups, by then.
	removeTaskCgroups(c.allocIDs())
	unmountBelow(c.dir)
	if c.t.Failed() {
		c.dumpLogs()
	}
	if os.Getenv("E2E_KEEP") != "" {
		c.t.Logf("E2E_KEEP is set: keeping %s", c.dir)
		return
	}
	if err := os.RemoveAll(c.dir); err != nil {
		c.t.Errorf("remove %s: %v", c.dir, err)
	}
}

// allocIDs are the IDs of the cluster's allocations that its clients
// have directories for (a restarted or replaced agent's included), those
// its server knows if it still answers, and those the tests waited on.
func (c *Cluster) allocIDs() []string {
	c.seenMu.Lock()
	ids := slices.Collect(maps.Keys(c.seen))
	c.seenMu.Unlock()
	if c.Nomad != nil {
		if list, _, err := c.Nomad.Allocations().List(&nomadapi.QueryOptions{Namespace: "*"}); err == nil {
			for _, a := range list {
				ids = append(ids, a.ID)
			}
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(nomadDataDir(filepath.Join(c.dir, "*")), "alloc", "*-*-*-*-*"))
	for _, d := range dirs {
		ids = append(ids, filepath.Base(d))
	}
	return ids
}

// removeTaskCgroups removes the cgroups of the allocations' tasks that
// the teardown leaves behind: the agents stop with their tasks running
// (as a Nomad client does) and the executors are then killed, so neither
// the driver (its v1 cgroups, nomad-driver-wasm/<alloc>.<task>) nor
// Nomad's client (its own, under nomad/) removes them.
func removeTaskCgroups(allocs []string) {
	for _, id := range allocs {
		for _, pattern := range []string{"/sys/fs/cgroup/*/nomad-driver-wasm/" + id + ".*", "/sys/fs/cgroup/*/nomad/" + id + ".*", "/sys/fs/cgroup/cpuset/nomad/reserve/" + id + ".*"} {
			dirs, _ := filepath.Glob(pattern)
			for _, dir := range dirs {
				_ = syscall.Rmdir(dir)
			}
		}
	}
}

// removeContainers removes the Docker containers of this cluster's tasks:
// those Nomad labelled with an allocation whose directories, bind-mounted
// into the container, lie below the cluster's directory.
func (c *Cluster) removeContainers() {
	out, err := exec.Command("docker", "ps", "-aq", "--filter", "label=com.hashicorp.nomad.alloc_id").Output()
	if err != nil || len(strings.TrimSpace(string(out))) == 0 {
		return
	}
	args := append([]string{"inspect", "--format", "{{.Id}}{{range .Mounts}} {{.Source}}{{end}}"}, strings.Fields(string(out))...)
	out, err = exec.Command("docker", args...).Output()
	if err != nil {
		return
	}
	var ids []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		for _, src := range f[min(1, len(f)):] {
			if strings.HasPrefix(src, c.dir+"/") {
				ids = append(ids, f[0])
				break
			}
		}
	}
	if len(ids) > 0 {
		_ = exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
	}
}

// unmountBelow unmounts every mount point below dir, deepest first.
func unmountBelow(dir string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			points = append(points, f[1])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// dumpLogs logs the agents' warnings and errors and the wasm plugin's
// lines, for a failed test.
func (c *Cluster) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(c.dir, "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		var keep []string
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "[ERROR]") || strings.Contains(line, "[WARN]") || strings.Contains(line, "wasm") {
				keep = append(keep, line)
			}
		}
		if len(keep) > 200 {
			keep = keep[len(keep)-200:]
		}
		c.t.Logf("==== %s (warnings, errors, wasm)\n%s", filepath.Base(l), strings.Join(keep, "\n"))
	}
}

// serveArtifacts builds the example modules and serves them, with the
// probe test module, over HTTP on loopback for artifact blocks; it returns
// the URL and the directory served.
func serveArtifacts(t testing.TB) (string, string) {
	t.Helper()
	dir := t.TempDir()
	examples := exampleModules(t)
	modules, err := filepath.Glob(filepath.Join(examples, "*.wasm"))
	must.NoError(t, err)
	must.SliceNotEmpty(t, modules)
	for _, m := range modules {
		b, err := os.ReadFile(m)
		must.NoError(t, err)
		must.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(m)), b, 0o644))
	}
	testmodule.Install(t, "probe", dir, "probe.wasm")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must.NoError(t, err)
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return "http://" + l.Addr().String(), dir
}

var (
	examplesOnce sync.Once
	examplesErr  error
)

// exampleModules builds example-jobs' modules and the mixed example's
// Docker image (make -C example-jobs) once per run and returns the
// directory that holds the modules.
func exampleModules(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "example-jobs")
	examplesOnce.Do(func() {
		cmd := exec.Command("make", "-s", "-C", dir, "modules", "image")
		if out, err := cmd.CombinedOutput(); err != nil {
			examplesErr = fmt.Errorf("make -C example-jobs modules image: %w\n%s", err, out)
		}
	})
	must.NoError(t, examplesErr)
	return filepath.Join(dir, "build")
}
