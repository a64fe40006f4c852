// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/cgroups"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/oci"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/outbound"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// How a task starts, in three steps:
//
//  1. resolve: what the task config names, found on this node (the
//     guest's mounts, the task's user, a module outside the task's view,
//     pulled or preinstalled, its listeners); each may refuse the task.
//  2. startRequest: what the executor is asked to start, a function of
//     the task config, the plugin config and what was resolved, with no
//     side effect.
//  3. launch: an executor for it (the shared one, or one of its own in
//     the task's cgroups), the start, and the task's handle.

func (d *Driver) startTask(cfg *drivers.TaskConfig) (*drivers.TaskHandle, error) {
	trace := executor.NewTrace(driverSpanNames)
	var tc TaskConfig
	if err := cfg.DecodeDriverConfig(&tc); err != nil {
		return nil, executor.JobErrorf("failed to decode driver config: %v", err)
	}
	if err := tc.Validate(); err != nil {
		return nil, executor.JobErrorf("invalid task config: %v", err)
	}
	trace.Mark(spanDecode)
	r, err := d.resolve(cfg, &tc, trace)
	if err != nil {
		return nil, err
	}
	req, err := startRequest(cfg, &tc, &d.config, r)
	if err != nil {
		return nil, err
	}
	trace.Mark(spanResolve)
	return d.launch(cfg, &tc, r.pulled, req, trace)
}

// The driver's steps of a task start, in the order they run, each timed
// from the end of the one before (executor.Trace); the executor's own
// steps come back in the StartResponse (executor.StartSpanNames). Both are
// on the driver's debug log line of the start, and BenchmarkTaskStart
// reports their medians.
const (
	// spanDecode: decoding and validating the task config.
	spanDecode = iota
	// spanMounts: the guest's mounts (taskMounts).
	spanMounts
	// spanResolve: the rest of resolve (the task's user, the module,
	// pulled when it is oci://, the network) and the start request.
	spanResolve
	// spanTake: taking the executor: the spare (or a new one), or the
	// node's shared one.
	spanTake
	// spanCgroupMake: making the task's cgroups and writing their limits
	// (an executor of its own only).
	spanCgroupMake
	// spanHandoff: opening what the task may reach for a shared executor
	// that cannot, and handing it over (shared executor only).
	spanHandoff
	// spanCompileInTask: compiling a module the shared executor lacks
	// within the task's cgroups (shared executor only).
	spanCompileInTask
	// spanStartRPC: the Start request's round trip, the executor's steps
	// included.
	spanStartRPC
	// spanHandle: what follows the Start: the next spare asked for, the
	// executor claimed, the driver state, the task events.
	spanHandle
)

var driverSpanNames = []string{"decode", "mounts", "resolve", "take", "cgroup-make", "handoff", "compile-in-task", "start-rpc", "handle"}

// startTrace is how long a task's start took, step by step.
type startTrace struct {
	// driver are the driver's steps (driverSpanNames).
	driver []*proto.Span
	// executor are the executor's, from its StartResponse
	// (executor.StartSpanNames); none from an older executor.
	executor []*proto.Span
}

// resolved is what a task config names, as found on this node before the
// task takes an executor.
type resolved struct {
	// mounts are the guest's view (taskMounts).
	mounts []executor.Mount
	// runAs is the user the task runs as (taskUser).
	runAs *proto.RunAs
	// pulled is the module pulled from a registry (module = "oci://…").
	pulled *oci.Module
	// hostModule is a module preinstalled on the node, outside the guest's
	// view, at a path the plugin config's allowed_host_paths allow.
	hostModule string
	// network is where the guest serves.
	network taskNetwork
	// logLevel is the driver's, which the executor's own log follows.
	logLevel string
}

// resolve finds on this node what the task config names. Its errors are
// classed: the job's (a mount, a user, a module or a port that is not
// there), the operator's, or the node's (a registry it cannot reach).
func (d *Driver) resolve(cfg *drivers.TaskConfig, tc *TaskConfig, trace *executor.Trace) (*resolved, error) {
	mounts, err := d.taskMounts(cfg, tc)
	if err != nil {
		return nil, err
	}
	trace.Mark(spanMounts)
	runAs, err := d.taskUser(cfg)
	if err != nil {
		return nil, err
	}
	r := &resolved{mounts: mounts, runAs: runAs, logLevel: logLevel(d.logger)}
	if oci.IsReference(tc.Module) {
		if r.pulled, err = d.pullModule(cfg, tc); err != nil {
			return nil, err
		}
	} else if _, _, err := executor.ResolveGuestPath(mounts, tc.Module); err != nil {
		// Not in the guest's view: a module preinstalled on the node, if
		// the operator allows its path.
		if !filepath.IsAbs(tc.Module) || len(d.config.AllowedHostPaths) == 0 {
			return nil, executor.NotFoundErrorf("invalid task config: module: %v", err)
		}
		file, herr := d.config.allowedHostPath(tc.Module)
		if herr != nil {
			return nil, executor.NotFoundErrorf("invalid task config: module %s is neither in the task's view nor an allowed host path: %v", tc.Module, herr)
		}
		r.hostModule = file
	}
	if r.network, err = networkFor(cfg, tc); err != nil {
		return nil, err
	}
	if u := d.shared.user(); d.config.SharedExecutor && u != nil && r.network.namespace != "" {
		return nil, executor.JobErrorf("the group's network has a namespace of its own (bridge or CNI), and this node's shared executor runs as user %s, which cannot enter it: "+
			"on this node such tasks need an executor of their own (plugin config shared_executor = false), or a shared executor that runs as root (default_user = \"root\" with allow_root = true)", u.Name)
	}
	return r, nil
}

// startRequest is what the executor is asked to start for the task: a
// function of Nomad's task config, the task config, the plugin config and
// what was resolved, with no side effect. Its error is the job's: a logs
// block this node cannot honour. The request names no cgroups: only the
// launch knows whether the task has an executor of its own to limit.
func startRequest(cfg *drivers.TaskConfig, tc *TaskConfig, config *Config, r *resolved) (*proto.StartRequest, error) {
	logs, err := logsRequest(cfg, tc, config)
	if err != nil {
		return nil, err
	}
	out, err := outboundRequest(cfg, tc, config)
	if err != nil {
		return nil, err
	}
	taskDir := cfg.TaskDir().Dir
	limit, limitSource := memoryLimit(cfg)
	req := &proto.StartRequest{
		Module:            tc.Module,
		Sha256:            tc.Sha256,
		Args:              tc.Args,
		Env:               cfg.Env,
		Entrypoint:        tc.Entrypoint,
		MemoryLimitPages:  limit,
		MemoryLimitSource: limitSource,
		StdoutPath:        cfg.StdoutPath,
		StderrPath:        cfg.StderrPath,
		StateDir:          taskDir,
		CacheDir:          config.CacheDir,
		Engine:            config.Engine,
		LogFile:           filepath.Join(taskDir, executorLogFile),
		LogLevel:          r.logLevel,
		MaxModuleBytes:    config.MaxModuleBytes,
		RunAs:             r.runAs,
		Listeners:         r.network.listeners,
		NetworkNamespace:  r.network.namespace,
		Http:              r.network.http,
		Logs:              logs,
		Outbound:          out,
	}
	switch {
	case r.pulled != nil:
		// The executor reads the pulled file and checks it is what was
		// pulled.
		req.ModuleFile, req.Sha256, req.ModuleFilePulled = r.pulled.File, r.pulled.Sha256, true
	case r.hostModule != "":
		req.ModuleFile = r.hostModule
	}
	for _, m := range r.mounts {
		req.Mounts = append(req.Mounts, &proto.Mount{GuestPath: m.GuestPath, HostPath: m.HostPath, ReadOnly: m.ReadOnly})
	}
	return req, nil
}

// launch starts req in an executor for the task (the node's shared one,
// or one of its own in the task's cgroups) and keeps the task's handle.
// pulled is the module pulled for the task, if any: a start that fails
// checks the node's copy of it. trace times its steps.
func (d *Driver) launch(cfg *drivers.TaskConfig, tc *TaskConfig, pulled *oci.Module, req *proto.StartRequest, trace *executor.Trace) (*drivers.TaskHandle, error) {
	logger := d.logger.With("alloc_id", cfg.AllocID, "task_name", cfg.Name)
	exec, err := d.executorFor(cfg)
	if err != nil {
		return nil, err
	}
	trace.Mark(spanTake)
	// An executor of its own, with its guest, runs in the task's cgroups:
	// it joins them before it loads the module, so that compiling it
	// counts against the task's memory.
	var cg cgroups.Task
	if !exec.Shared() {
		var cgErr error
		if cg, cgErr = cgroups.Make(cfg.AllocID, cfg.Name, cgroupLimits(cfg)); cgErr != nil {
			d.emit(cfg, "The task's CPU and memory are not limited by cgroups: "+cgErr.Error(), map[string]string{"cgroups": "none"})
		}
	}
	req.Cgroups = cg.Join
	trace.Mark(spanCgroupMake)
	resp, err := d.startIn(exec, cfg, req, trace)
	if exec.Shared() && errors.Is(err, executor.ErrExecutorLost) {
		// The shared executor died just before (its death may not have
		// been noticed yet): the task starts in a new one.
		d.shared.lost(exec.Client())
		if exec, err = d.executorFor(cfg); err != nil {
			return nil, err
		}
		trace.Mark(spanTake)
		resp, err = d.startIn(exec, cfg, req, trace)
	}
	if !exec.Shared() {
		if err == nil {
			d.executors.started(resp.ModuleSha256)
		}
		d.executors.fill()
	}
	if err != nil && cg.Memory != "" && cgroups.OOMKills(cg.Memory) > cg.OOMKillsBefore {
		// The executor joins the task's cgroups before it loads the
		// module, so that compiling it counts against the task's memory:
		// one it cannot compile within that is the job's to fix.
		err = compiledOutOfMemory(tc.Module, req.MemoryLimitSource)
	}
	if err != nil {
		exec.End()
		cgroups.Remove(cg.Made)
		if pulled != nil && d.puller().ForgetIfDamaged(pulled) {
			d.emit(cfg, fmt.Sprintf("The node's copy of module %s (manifest %s) was damaged and has been removed; the next start pulls it again", tc.Module, pulled.Manifest), nil)
		}
		return nil, err
	}
	// The executor is the task's now: it no longer exits with this driver.
	// (The shared executor is never claimed: it exits once it holds no
	// task and no driver.)
	if !exec.Shared() {
		exec.Client().Claimed()
	}

	state := TaskState{
		ReattachConfig: pstructs.ReattachConfigFromGoPlugin(exec.Client().ReattachConfig()),
		TaskConfig:     cfg,
		DriverConfig:   *tc,
		ExecutorPid:    exec.Client().Pid,
		StartedAt:      time.Now().Round(time.Millisecond),
		ModuleSha256:   resp.ModuleSha256,
		SharedExecutor: exec.Shared(),
		Cgroups:        cg.Made,
		MemoryCgroup:   cg.Memory,
		OOMKillsBefore: cg.OOMKillsBefore,
	}
	if pulled != nil {
		state.ModuleManifest = pulled.Manifest
	}
	handle := drivers.NewTaskHandle(taskHandleVersion)
	handle.Config = cfg
	if err := handle.SetDriverState(&state); err != nil {
		exec.End()
		cgroups.Remove(cg.Made)
		return nil, executor.NodeErrorf("failed to set driver state: %v", err)
	}

	h := d.newHandle(cfg, state, exec, logger)
	if resp.CacheRepaired != "" {
		h.emit(fmt.Sprintf("The node's compiled entry of module %s was damaged and has been replaced (%s); the executor log has the details", resp.ModuleSha256[:12], resp.CacheRepaired),
			map[string]string{"module_sha256": resp.ModuleSha256, "error_class": executor.ClassNode.String()})
	}
	h.emit(loadEvent(resp, exec.Shared()), map[string]string{
		"cache_hit":     strconv.FormatBool(resp.CacheHit),
		"prepared":      strconv.FormatBool(resp.Prepared),
		"load_ms":       strconv.FormatInt(time.Duration(resp.LoadNanos).Milliseconds(), 10),
		"module_sha256": resp.ModuleSha256,
		"engine":        resp.Engine,
	})
	if where := describeNetwork(req); where != "" {
		h.emit(where, nil)
	}
	trace.Mark(spanHandle)
	h.started = startTrace{driver: trace.Spans(), executor: resp.Spans}
	if logger.IsDebug() {
		logger.Debug("task started", append(executor.SpanLogArgs(h.started.driver), executor.SpanLogArgs(h.started.executor)...)...)
	}
	d.tasks.Set(cfg.ID, h)
	go h.run()
	go h.relayNotices()
	return handle, nil
}

// taskMounts is the guest's view: the task's directories, then Nomad's
// volume mounts (host volumes, which the node's operator configured), then
// the task config's mount blocks, each of which must resolve inside the
// plugin config's allowed_host_paths.
func (d *Driver) taskMounts(cfg *drivers.TaskConfig, tc *TaskConfig) ([]executor.Mount, error) {
	mounts := guestMounts(cfg)
	var guests []string
	for _, m := range cfg.Mounts {
		if m == nil {
			continue
		}
		guest := path.Clean("/" + m.TaskPath)
		guests = append(guests, guest)
		mounts = append(mounts, executor.Mount{GuestPath: guest, HostPath: m.HostPath, ReadOnly: m.Readonly})
	}
	for _, m := range tc.Mounts {
		host, err := d.config.allowedHostPath(m.HostPath)
		if err != nil {
			return nil, executor.JobErrorf("invalid task config: mount %s: %v", m.GuestPath, err)
		}
		if st, err := os.Stat(host); err != nil || !st.IsDir() {
			return nil, executor.JobErrorf("invalid task config: mount %s: host_path %s is not a directory on this node: mount a directory", m.GuestPath, m.HostPath)
		}
		guests = append(guests, m.GuestPath)
		mounts = append(mounts, executor.Mount{GuestPath: m.GuestPath, HostPath: host, ReadOnly: m.ReadOnly})
	}
	if err := validateGuestPaths(guests, "mounts (volume_mount and mount blocks)"); err != nil {
		return nil, executor.JobErrorf("invalid task config: %v", err)
	}
	return mounts, nil
}

// guestMounts is the guest's view of the task's directories.
func guestMounts(cfg *drivers.TaskConfig) []executor.Mount {
	dir := cfg.TaskDir()
	return []executor.Mount{
		{GuestPath: "/local", HostPath: dir.LocalDir},
		{GuestPath: "/alloc", HostPath: dir.SharedAllocDir},
		{GuestPath: "/secrets", HostPath: dir.SecretsDir, ReadOnly: true},
	}
}

// pullModule fetches the task's oci:// module into the node's record (see
// oci.Puller) and checks it against the task config's sha256 pin.
func (d *Driver) pullModule(cfg *drivers.TaskConfig, tc *TaskConfig) (*oci.Module, error) {
	src, err := oci.Parse(tc.Module)
	if err != nil {
		return nil, executor.JobErrorf("invalid task config: %v", err)
	}
	p := d.puller()
	began := time.Now()
	auth := oci.Credentials(tc.Auth)
	m, err := p.Pull(d.ctx, src, &auth)
	if err != nil {
		return nil, err
	}
	if tc.Sha256 != "" && !strings.EqualFold(tc.Sha256, m.Sha256) {
		return nil, executor.JobErrorf("module %s: what the registry holds (manifest %s) has sha256 %s, but the task config's sha256 pins %s: the reference and the pin disagree; fix one of them", src, m.Manifest, m.Sha256, tc.Sha256)
	}
	annotations := map[string]string{"module_sha256": m.Sha256, "manifest": m.Manifest, "cached": strconv.FormatBool(m.Cached)}
	switch {
	case m.Cached && m.Resolved:
		d.emit(cfg, fmt.Sprintf("Module %s resolved to manifest %s, whose module was on the node already", src, m.Manifest), annotations)
	case m.Cached:
		d.emit(cfg, fmt.Sprintf("Module %s (manifest %s) was on the node already: no registry was asked", src, m.Manifest), annotations)
	default:
		d.emit(cfg, fmt.Sprintf("Module %s pulled from its registry in %s (manifest %s, module sha256 %s)", src, time.Since(began).Round(time.Millisecond), m.Manifest, m.Sha256[:12]), annotations)
	}
	return m, nil
}

// puller pulls modules from registries into the node's cache.
func (d *Driver) puller() *oci.Puller {
	creds := make([]oci.Credentials, 0, len(d.config.RegistryAuth))
	for _, a := range d.config.RegistryAuth {
		creds = append(creds, oci.Credentials(a))
	}
	return &oci.Puller{Dir: filepath.Join(d.config.CacheDir, "oci"), Insecure: d.config.InsecureRegistries,
		Credentials: creds, MaxBytes: d.config.MaxModuleBytes}
}

// memoryLimit is the guest's linear-memory cap in pages, from memory_max
// when the task sets it, else memory; and a description of where it came
// from for error messages.
func memoryLimit(cfg *drivers.TaskConfig) (uint32, string) {
	if cfg.Resources == nil || cfg.Resources.NomadResources == nil {
		return 0, "no task resources"
	}
	mem := cfg.Resources.NomadResources.Memory
	mb, field := mem.MemoryMB, "resources.memory"
	if mem.MemoryMaxMB > 0 {
		mb, field = mem.MemoryMaxMB, "resources.memory_max"
	}
	if mb <= 0 {
		return 0, "no memory resources"
	}
	pages := uint64(mb) * (1 << 20) / executor.PageSize
	return uint32(min(pages, 65536)), fmt.Sprintf("%s = %d MiB", field, mb)
}

// logsRequest says where and how the task's executor writes its logs:
// alloc/logs/<task>.stdout.N and .stderr.N, rotated as the plugin config's
// logs block says unless the task's overrides it; nil when Nomad's logmon
// collects them (logs.collector = "logmon").
func logsRequest(cfg *drivers.TaskConfig, tc *TaskConfig, config *Config) (*proto.Logs, error) {
	if !config.ExecutorWritesLogs() {
		if tc.Logs.MaxFiles != 0 || tc.Logs.MaxFileSize != 0 {
			return nil, executor.JobErrorf("invalid task config: logs: this node's wasm driver leaves logs to Nomad's logmon (plugin config logs.collector = %q), which rotates them as the job's logs block says: move max_files and max_file_size to the task's logs block", LogsByNomad)
		}
		return nil, nil
	}
	files, size := config.Logs.MaxFiles, config.Logs.MaxFileSize
	if tc.Logs.MaxFiles != 0 {
		files = tc.Logs.MaxFiles
	}
	if tc.Logs.MaxFileSize != 0 {
		size = tc.Logs.MaxFileSize
	}
	return &proto.Logs{Dir: cfg.TaskDir().LogDir, Name: cfg.Name, MaxFiles: int32(files), MaxFileBytes: int64(size) << 20}, nil
}

// logLevel is l's level, which the executor's own log follows.
func logLevel(l hclog.Logger) string {
	switch {
	case l.IsTrace():
		return "trace"
	case l.IsDebug():
		return "debug"
	}
	return "info"
}

// executorFor is the executor a task starts in: the node's shared
// executor, or one of its own (the spare, when there is one).
func (d *Driver) executorFor(cfg *drivers.TaskConfig) (*executor.Task, error) {
	if d.config.SharedExecutor {
		c, err := d.shared.get()
		if err != nil {
			return nil, executor.NodeErrorf("failed to reach the node's shared executor: %v", err)
		}
		return c.Task(cfg.ID, true), nil
	}
	c, err := d.executors.take()
	if err != nil {
		return nil, executor.NodeErrorf("failed to launch executor: %v", err)
	}
	return c.Task(cfg.ID, false), nil
}

// executorOverhead is what the cgroup memory limit allows beyond the
// task's memory: the executor's own runtime, compiled code and buffers.
const executorOverhead = 64 << 20

// cgroupLimits are the limits of a task's executor of its own (the shared
// executor's tasks share its process and are not limited one by one):
// those of Nomad's own exec driver, the CPU share from resources.cpu, a
// hard memory limit of the task's memory (memory_max when set, with
// memory as the soft limit) plus executorOverhead for the executor
// itself, and resources.cores as a cpuset (the cgroup Nomad made for the
// task, else its cpus).
func cgroupLimits(cfg *drivers.TaskConfig) cgroups.Limits {
	var l cgroups.Limits
	if cfg.Resources == nil {
		return l
	}
	if lr := cfg.Resources.LinuxResources; lr != nil {
		l.CPUShares = max(lr.CPUShares, 2)
		l.MemoryBytes = lr.MemoryLimitBytes
		l.CpusetPath = lr.CpusetCgroupPath
		l.Cpus = lr.CpusetCpus
	}
	if nr := cfg.Resources.NomadResources; nr != nil {
		l.MemoryBytes = max(l.MemoryBytes, nr.Memory.MemoryMB<<20, nr.Memory.MemoryMaxMB<<20)
		if nr.Memory.MemoryMaxMB > nr.Memory.MemoryMB && nr.Memory.MemoryMB > 0 {
			l.MemoryLow = nr.Memory.MemoryMB<<20 + executorOverhead
		}
	}
	if l.MemoryBytes > 0 {
		l.MemoryBytes += executorOverhead
	}
	return l
}

// startIn starts the task in exec, handing it what the task may reach
// first where exec cannot open it itself. A shared executor that has no
// compiled code of the module compiles none itself: the module is compiled
// within the task's cgroups (compileInTask), and the task started again. trace
// times its steps.
func (d *Driver) startIn(exec *executor.Task, cfg *drivers.TaskConfig, req *proto.StartRequest, trace *executor.Trace) (*proto.StartResponse, error) {
	start := func() (*proto.StartResponse, error) {
		if err := d.handOver(exec, cfg.ID, req); err != nil {
			return nil, err
		}
		trace.Mark(spanHandoff)
		resp, err := exec.Start(d.ctx, req)
		trace.Mark(spanStartRPC)
		return resp, err
	}
	resp, err := start()
	if !exec.Shared() || !executor.IsNotCompiled(err) {
		return resp, err
	}
	var mounts []executor.Mount
	for _, m := range req.Mounts {
		mounts = append(mounts, executor.Mount{GuestPath: m.GuestPath, HostPath: m.HostPath, ReadOnly: m.ReadOnly})
	}
	if err := d.compileInTask(d.ctx, cfg, mounts, req.Module, req.ModuleFile, req.MemoryLimitSource, true); err != nil {
		return nil, err
	}
	trace.Mark(spanCompileInTask)
	resp, err = start()
	if executor.IsNotCompiled(err) {
		// Compiled, and still not found: the shared executor cannot read
		// what the driver wrote.
		user := "its user"
		if u := d.shared.user(); u != nil {
			user = "user " + u.Name
		}
		return nil, executor.OperatorErrorf("the node's shared executor (running as %s) cannot read the compiled module the driver wrote into cache_dir %s: make cache_dir and every directory above it readable and searchable by that user (the default, /var/cache/nomad-driver-wasm, is)", user, d.config.CacheDir)
	}
	return resp, err
}

// loadEvent says how the executor (the shared one when shared) had the
// task's module ready, for its task event.
func loadEvent(resp *proto.StartResponse, shared bool) string {
	took := time.Duration(resp.LoadNanos).Round(100 * time.Microsecond)
	short := resp.ModuleSha256[:12]
	switch {
	case resp.Prepared && shared:
		return fmt.Sprintf("Module %s was ready: the shared executor had kept it from an earlier task of it that ended on this node recently", short)
	case resp.Prepared:
		return fmt.Sprintf("Module %s was ready: the spare executor had prepared it, as it started on this node recently", short)
	case resp.CacheHit:
		return fmt.Sprintf("Module %s loaded from the compiled-module cache in %s", short, took)
	case resp.Engine == EngineCompiler:
		return fmt.Sprintf("Module %s compiled in %s and added to the compiled-module cache", short, took)
	}
	return fmt.Sprintf("Module %s prepared for the interpreter in %s (the interpreter has no compiled-module cache)", short, took)
}

// outboundRequest is the task's outbound policy for the executor: its
// rules, which must be within the operator's ceiling (a job error naming
// the first that is not), the ceiling and the denied networks, and the
// resolver Nomad gives the task (the group's dns block), if any. A task
// without rules gets none: each connect of its guest is refused.
func outboundRequest(cfg *drivers.TaskConfig, tc *TaskConfig, config *Config) (*proto.Outbound, error) {
	if len(tc.Outbound) == 0 {
		return nil, nil
	}
	rules, err := outbound.ParseRules("outbound", tc.Outbound)
	if err != nil {
		return nil, executor.JobErrorf("%v", err)
	}
	if err := outbound.CheckCeiling(rules, config.Outbound.allow); err != nil {
		return nil, executor.JobErrorf("%v", err)
	}
	out := &proto.Outbound{DenyNetworks: config.Outbound.DenyNetworks}
	for _, r := range rules {
		out.Rules = append(out.Rules, r.String())
	}
	for _, r := range config.Outbound.allow {
		out.Allow = append(out.Allow, r.String())
	}
	if cfg.DNS != nil {
		out.DnsServers, out.DnsSearches = cfg.DNS.Servers, cfg.DNS.Searches
	}
	return out, nil
}
