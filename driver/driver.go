// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package driver is the Nomad task driver plugin "wasm": its identity,
// configuration schemas, capabilities and the task lifecycle. It knows
// Nomad; everything about running a guest is the executor's, reached only
// through executor.Client.
package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/consul-template/signals"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/client/lib/cpustats"
	cstructs "github.com/hashicorp/nomad/client/structs"
	"github.com/hashicorp/nomad/drivers/shared/eventer"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/drivers/fsisolation"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/fingerprint"
)

const (
	// PluginName is the driver's name: what a job writes in driver = "wasm".
	PluginName = "wasm"

	// executorLogFile is the executor's own log, in the task directory.
	executorLogFile = "wasm-executor.log"
)

var pluginInfo = &base.PluginInfoResponse{
	Type:              base.PluginTypeDriver,
	PluginApiVersions: []string{drivers.ApiVersion010},
	PluginVersion:     executor.Version,
	Name:              PluginName,
}

// capabilities: the guest's filesystem is the driver's own view (Image),
// which also makes Nomad give the task /local, /alloc and /secrets paths in
// its environment and keeps the client's environment out of it.
var capabilities = &drivers.Capabilities{
	SendSignals:  true,
	Exec:         true,
	FSIsolation:  fsisolation.Image,
	MountConfigs: drivers.MountConfigSupportAll,
	NetIsolationModes: []drivers.NetIsolationMode{
		drivers.NetIsolationModeHost,
		drivers.NetIsolationModeGroup,
	},
}

// Driver is the wasm task driver.
type Driver struct {
	ctx     context.Context
	logger  hclog.Logger
	eventer *eventer.Eventer
	tasks   *taskStore

	config  Config
	compute cpustats.Compute

	// fingerprintPeriod is how often the node is fingerprinted again.
	fingerprintPeriod time.Duration
	// executors hands out executors, keeping one started ahead.
	executors *spareExecutor
	// shared is the node's shared executor, for shared_executor = true.
	shared *sharedExecutor
}

// New returns the driver; ctx ends with the plugin.
func New(ctx context.Context, logger hclog.Logger) *Driver {
	logger = logger.Named(PluginName)
	d := &Driver{
		ctx:     ctx,
		logger:  logger,
		eventer: eventer.NewEventer(ctx, logger),
		tasks:   newTaskStore(),
		config:  Config{Engine: EngineAuto, CacheDir: DefaultCacheDir()},

		fingerprintPeriod: 30 * time.Second,
		executors:         newSpareExecutor(ctx, logger.Named("executor"), ""),
		shared:            newSharedExecutor(ctx, logger.Named("shared_executor"), ""),
	}
	go d.executors.run()
	return d
}

func (d *Driver) PluginInfo() (*base.PluginInfoResponse, error) { return pluginInfo, nil }

func (d *Driver) ConfigSchema() (*hclspec.Spec, error) { return configSpec, nil }

func (d *Driver) SetConfig(cfg *base.Config) error {
	var config Config
	if len(cfg.PluginConfig) != 0 {
		if err := base.MsgPackDecode(cfg.PluginConfig, &config); err != nil {
			return err
		}
	}
	if err := config.Validate(); err != nil {
		return fmt.Errorf("plugin nomad-driver-wasm: %w", err)
	}
	// An engine the node cannot run is reported by the fingerprint as
	// unhealthy, with the reason, rather than failing the agent's start.
	d.config = config
	if cfg.AgentConfig != nil {
		d.compute = cfg.AgentConfig.Compute()
	}
	var sharedUser *proto.RunAs
	if u := config.defaultRunAs; u != nil && u.Uid != 0 {
		sharedUser = u
	}
	d.shared.configure(sharedDir(config.CacheDir), sharedUser)
	if config.SharedExecutor {
		// Tasks go to the shared executor, which is always ready: no spare.
		d.executors.setWarm(nil)
		return nil
	}
	// Have an executor ready for the first task.
	d.executors.setWarm(&executor.Warm{CacheDir: config.CacheDir, Engine: config.Engine, Modules: config.WarmModules})
	d.executors.fill()
	return nil
}

func (d *Driver) TaskConfigSchema() (*hclspec.Spec, error) { return taskConfigSpec, nil }

// Capabilities: with logs.collector = "executor" (the default) the driver
// declares DisableLogCollection, so Nomad starts no logmon per task, and
// each task's executor writes its logs (see logsRequest).
func (d *Driver) Capabilities() (*drivers.Capabilities, error) {
	caps := *capabilities
	caps.DisableLogCollection = d.config.ExecutorWritesLogs()
	return &caps, nil
}

func (d *Driver) Fingerprint(ctx context.Context) (<-chan *drivers.Fingerprint, error) {
	ch := make(chan *drivers.Fingerprint)
	go func() {
		defer close(ch)
		t := time.NewTimer(0)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.ctx.Done():
				return
			case <-t.C:
			}
			fp := d.fingerprint(ctx)
			select {
			case ch <- fp:
			case <-ctx.Done():
				return
			case <-d.ctx.Done():
				return
			}
			t.Reset(d.fingerprintPeriod)
		}
	}()
	return ch, nil
}

// fingerprintTimeout bounds how long one fingerprint waits for an executor
// to start and answer.
const fingerprintTimeout = 30 * time.Second

// fingerprint asks an executor (the spare) what tasks get on this node, so
// that the attributes describe what a task would actually run with.
func (d *Driver) fingerprint(ctx context.Context) *drivers.Fingerprint {
	ctx, cancel := context.WithTimeout(ctx, fingerprintTimeout)
	defer cancel()
	req := &proto.VersionRequest{Engine: d.config.Engine, CacheDir: d.config.CacheDir}
	var v *proto.VersionResponse
	var err error
	if d.config.SharedExecutor {
		v, err = d.shared.version(ctx, req)
	} else {
		v, err = d.executors.version(ctx, req)
	}
	fp := fingerprint.FromExecutor(v, err, d.config.CacheDir)
	cg, cgErr := cgroupVersion()
	switch {
	case d.config.SharedExecutor:
		cg = "none (shared executor)"
	case cgErr != nil:
		cg = "none"
	}
	if fp.Attributes != nil {
		fp.Attributes["driver.wasm.cgroups"] = pstructs.NewStringAttribute(cg)
	}
	return fp
}

// guestMounts is the guest's view of the task's directories.
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

func guestMounts(cfg *drivers.TaskConfig) []executor.Mount {
	dir := cfg.TaskDir()
	return []executor.Mount{
		{GuestPath: "/local", HostPath: dir.LocalDir},
		{GuestPath: "/alloc", HostPath: dir.SharedAllocDir},
		{GuestPath: "/secrets", HostPath: dir.SecretsDir, ReadOnly: true},
	}
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

func (d *Driver) StartTask(cfg *drivers.TaskConfig) (*drivers.TaskHandle, *drivers.DriverNetwork, error) {
	if _, ok := d.tasks.Get(cfg.ID); ok {
		return nil, nil, fmt.Errorf("task with ID %q already started", cfg.ID)
	}
	handle, err := d.startTask(cfg)
	if err != nil {
		return nil, nil, d.startFailed(cfg, err)
	}
	return handle, nil, nil
}

// startFailed reports a task that could not start: a task event that says
// who must act, and the error that Nomad's restart policy reads. Only a
// failure of the node is recoverable: restarting cannot fix a job or a
// node's configuration.
func (d *Driver) startFailed(cfg *drivers.TaskConfig, err error) error {
	class := executor.ClassOf(err)
	var what string
	switch class {
	case executor.ClassJob:
		what = "Rejected by the wasm driver (fix the job; restarting will not help)"
	case executor.ClassOperator:
		what = "The node's wasm driver is misconfigured (its operator must fix it)"
	default:
		what = "Node failure (the restart policy applies)"
	}
	d.emit(cfg, what+": "+err.Error(), map[string]string{"error_class": class.String()})
	if class == executor.ClassNode {
		return structs.NewRecoverableError(err, true)
	}
	return err
}

func (d *Driver) startTask(cfg *drivers.TaskConfig) (*drivers.TaskHandle, error) {
	var tc TaskConfig
	if err := cfg.DecodeDriverConfig(&tc); err != nil {
		return nil, executor.JobErrorf("failed to decode driver config: %v", err)
	}
	if err := tc.Validate(); err != nil {
		return nil, executor.JobErrorf("invalid task config: %v", err)
	}
	mounts, err := d.taskMounts(cfg, &tc)
	if err != nil {
		return nil, err
	}
	runAs, err := d.taskUser(cfg)
	if err != nil {
		return nil, err
	}
	var fetched *pulled
	if isOCI(tc.Module) {
		if fetched, err = d.pullModule(cfg, &tc); err != nil {
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
		fetched = &pulled{file: file, sha256: tc.Sha256}
	}

	network := &proto.StartRequest{}
	if err := networkRequest(cfg, &tc, network); err != nil {
		return nil, err
	}
	if u := d.shared.user(); d.config.SharedExecutor && u != nil && network.NetworkNamespace != "" {
		return nil, executor.JobErrorf("the group's network has a namespace of its own (bridge or CNI), and this node's shared executor runs as user %s, which cannot enter it: "+
			"on this node such tasks need an executor of their own (plugin config shared_executor = false), or a shared executor that runs as root (default_user = \"root\" with allow_root = true)", u.Name)
	}
	logs, err := d.logsRequest(cfg, &tc)
	if err != nil {
		return nil, err
	}

	logger := d.logger.With("alloc_id", cfg.AllocID, "task_name", cfg.Name)
	taskDir := cfg.TaskDir().Dir
	exec, err := d.executorFor(cfg)
	if err != nil {
		return nil, err
	}
	// An executor of its own, with its guest, runs in the task's cgroups:
	// it joins them once it has loaded the program, before the guest runs.
	var cg taskCgroups
	if !exec.Shared() {
		var cgErr error
		if cg, cgErr = makeCgroups(cgroupName(cfg), limitsFor(cfg)); cgErr != nil {
			d.emit(cfg, "The task's CPU and memory are not limited by cgroups: "+cgErr.Error(), map[string]string{"cgroups": "none"})
		}
	}

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
		CacheDir:          d.config.CacheDir,
		Engine:            d.config.Engine,
		LogFile:           filepath.Join(taskDir, executorLogFile),
		LogLevel:          logLevel(d.logger),
		MaxModuleBytes:    d.config.MaxModuleBytes,
		Cgroups:           cg.join,
		RunAs:             runAs,
	}
	if fetched != nil {
		// The executor reads the pulled file and checks it is what was
		// pulled.
		req.ModuleFile, req.Sha256, req.ModuleFilePulled = fetched.file, fetched.sha256, fetched.manifest != ""
	}
	for _, m := range mounts {
		req.Mounts = append(req.Mounts, &proto.Mount{GuestPath: m.GuestPath, HostPath: m.HostPath, ReadOnly: m.ReadOnly})
	}
	req.Listeners, req.NetworkNamespace, req.Http = network.Listeners, network.NetworkNamespace, network.Http
	req.Logs = logs
	resp, err := d.startIn(exec, cfg.ID, req)
	if exec.Shared() && errors.Is(err, executor.ErrExecutorLost) {
		// The shared executor died just before (its death may not have
		// been noticed yet): the task starts in a new one.
		d.shared.lost(exec.Client())
		if exec, err = d.executorFor(cfg); err != nil {
			return nil, err
		}
		resp, err = d.startIn(exec, cfg.ID, req)
	}
	if !exec.Shared() {
		if err == nil {
			d.executors.started(resp.ModuleSha256)
		}
		d.executors.fill()
	}
	if err != nil && cg.memory != "" && cgroupOOMKills(cg.memory) > cg.oomKillsBefore {
		// The executor joins the task's cgroups before it loads the
		// module, so that compiling it counts against the task's memory:
		// one it cannot compile within that is the job's to fix.
		err = executor.JobErrorf("module %s could not be loaded within the task's memory (%s): the executor was killed for want of memory while it compiled the module, which takes several times the module's size. Raise the task's memory (resources.memory, or memory_max where the node allows oversubscription), or make the module smaller", tc.Module, limitSource)
	}
	if err != nil {
		exec.End()
		removeCgroups(cg.made)
		if req.ModuleFilePulled && d.puller().forgetIfDamaged(fetched) {
			d.emit(cfg, fmt.Sprintf("The node's copy of module %s (manifest %s) was damaged and has been removed; the next start pulls it again", tc.Module, fetched.manifest), nil)
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
		DriverConfig:   tc,
		ExecutorPid:    exec.Client().Pid,
		StartedAt:      time.Now().Round(time.Millisecond),
		ModuleSha256:   resp.ModuleSha256,
		SharedExecutor: exec.Shared(),
		Cgroups:        cg.made,
		MemoryCgroup:   cg.memory,
		OOMKillsBefore: cg.oomKillsBefore,
	}
	if fetched != nil {
		state.ModuleManifest = fetched.manifest
	}
	handle := drivers.NewTaskHandle(taskHandleVersion)
	handle.Config = cfg
	if err := handle.SetDriverState(&state); err != nil {
		exec.End()
		removeCgroups(cg.made)
		return nil, executor.NodeErrorf("failed to set driver state: %v", err)
	}

	h := d.newHandle(cfg, state, exec, logger)
	if resp.CacheRepaired != "" {
		h.emit(fmt.Sprintf("The node's compiled entry of module %s was damaged and has been replaced (%s); the executor log has the details", resp.ModuleSha256[:12], resp.CacheRepaired),
			map[string]string{"module_sha256": resp.ModuleSha256, "error_class": executor.ClassNode.String()})
	}
	h.emit(loadEvent(resp), map[string]string{
		"cache_hit":     strconv.FormatBool(resp.CacheHit),
		"prepared":      strconv.FormatBool(resp.Prepared),
		"load_ms":       strconv.FormatInt(time.Duration(resp.LoadNanos).Milliseconds(), 10),
		"module_sha256": resp.ModuleSha256,
		"engine":        resp.Engine,
	})
	if where := describeNetwork(req); where != "" {
		h.emit(where, nil)
	}
	d.tasks.Set(cfg.ID, h)
	go h.run()
	return handle, nil
}

// startIn starts task id in exec, handing it what the task may reach
// first where exec cannot open it itself.
func (d *Driver) startIn(exec *executor.Task, id string, req *proto.StartRequest) (*proto.StartResponse, error) {
	if err := d.handOver(exec, id, req); err != nil {
		return nil, err
	}
	return exec.Start(d.ctx, req)
}

// pullModule fetches the task's oci:// module into the node's record (see
// ociPuller) and checks it against the task config's sha256 pin.
func (d *Driver) pullModule(cfg *drivers.TaskConfig, tc *TaskConfig) (*pulled, error) {
	src, err := parseOCI(tc.Module)
	if err != nil {
		return nil, executor.JobErrorf("invalid task config: %v", err)
	}
	p := d.puller()
	began := time.Now()
	m, err := p.pull(d.ctx, src, &tc.Auth)
	if err != nil {
		return nil, err
	}
	if tc.Sha256 != "" && !strings.EqualFold(tc.Sha256, m.sha256) {
		return nil, executor.JobErrorf("module %s: what the registry holds (manifest %s) has sha256 %s, but the task config's sha256 pins %s: the reference and the pin disagree; fix one of them", src.ref, m.manifest, m.sha256, tc.Sha256)
	}
	annotations := map[string]string{"module_sha256": m.sha256, "manifest": m.manifest, "cached": strconv.FormatBool(m.cached)}
	switch {
	case m.cached && m.resolved:
		d.emit(cfg, fmt.Sprintf("Module %s resolved to manifest %s, whose module was on the node already", src.ref, m.manifest), annotations)
	case m.cached:
		d.emit(cfg, fmt.Sprintf("Module %s (manifest %s) was on the node already: no registry was asked", src.ref, m.manifest), annotations)
	default:
		d.emit(cfg, fmt.Sprintf("Module %s pulled from its registry in %s (manifest %s, module sha256 %s)", src.ref, time.Since(began).Round(time.Millisecond), m.manifest, m.sha256[:12]), annotations)
	}
	return m, nil
}

// puller pulls modules from registries into the node's cache.
func (d *Driver) puller() *ociPuller {
	return &ociPuller{dir: filepath.Join(d.config.CacheDir, "oci"), insecure: d.config.InsecureRegistries,
		auth: d.config.RegistryAuth, maxBytes: d.config.MaxModuleBytes}
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

func loadEvent(resp *proto.StartResponse) string {
	took := time.Duration(resp.LoadNanos).Round(100 * time.Microsecond)
	short := resp.ModuleSha256[:12]
	switch {
	case resp.Prepared:
		return fmt.Sprintf("Module %s was ready: the spare executor had prepared it, as it started on this node recently", short)
	case resp.CacheHit:
		return fmt.Sprintf("Module %s loaded from the compiled-module cache in %s", short, took)
	case resp.Engine == EngineCompiler:
		return fmt.Sprintf("Module %s compiled in %s and added to the compiled-module cache", short, took)
	}
	return fmt.Sprintf("Module %s prepared for the interpreter in %s (the interpreter has no compiled-module cache)", short, took)
}

func logLevel(l hclog.Logger) string {
	switch {
	case l.IsTrace():
		return "trace"
	case l.IsDebug():
		return "debug"
	}
	return "info"
}

func (d *Driver) newHandle(cfg *drivers.TaskConfig, state TaskState, exec *executor.Task, logger hclog.Logger) *taskHandle {
	return &taskHandle{
		logger:     logger,
		exec:       exec,
		taskConfig: cfg,
		state:      state,
		procState:  drivers.TaskStateRunning,
		doneCh:     make(chan struct{}),
		emit: func(msg string, annotations map[string]string) {
			d.emit(cfg, msg, annotations)
		},
	}
}

// emit reports a task event.
func (d *Driver) emit(cfg *drivers.TaskConfig, msg string, annotations map[string]string) {
	err := d.eventer.EmitEvent(&drivers.TaskEvent{
		TaskID:      cfg.ID,
		TaskName:    cfg.Name,
		AllocID:     cfg.AllocID,
		Timestamp:   time.Now(),
		Message:     msg,
		Annotations: annotations,
	})
	if err != nil {
		d.logger.Warn("cannot emit task event", "task_id", cfg.ID, "error", err)
	}
}

func (d *Driver) RecoverTask(handle *drivers.TaskHandle) error {
	if handle == nil || handle.Config == nil {
		return fmt.Errorf("handle cannot be nil and must carry the task's config")
	}
	if _, ok := d.tasks.Get(handle.Config.ID); ok {
		return nil
	}
	if handle.Version != taskHandleVersion {
		return fmt.Errorf("task handle version %d is not supported by this driver (it reads version %d)", handle.Version, taskHandleVersion)
	}
	var state TaskState
	if err := handle.GetDriverState(&state); err != nil {
		return fmt.Errorf("failed to decode task state from handle: %w", err)
	}
	cfg := state.TaskConfig
	if cfg == nil {
		return fmt.Errorf("task %s: its driver state holds no task config, so it cannot be recovered", handle.Config.ID)
	}
	logger := d.logger.With("alloc_id", cfg.AllocID, "task_name", cfg.Name)
	rc, err := pstructs.ReattachConfigToGoPlugin(state.ReattachConfig)
	if err != nil {
		return fmt.Errorf("failed to read the executor's reattach config: %w", err)
	}
	var exec *executor.Task
	var c *executor.Client
	if state.SharedExecutor {
		c, err = d.shared.reattach(rc)
	} else {
		c, err = executor.Reattach(rc)
	}
	if err == nil {
		exec = c.Task(cfg.ID, state.SharedExecutor)
	}
	h := d.newHandle(cfg, state, exec, logger)
	d.tasks.Set(cfg.ID, h)
	if err != nil {
		// The executor is gone. If its guest exited while nobody was
		// attached, it left the exit status behind.
		logger.Info("executor is gone; reading its recorded exit status", "executor_pid", state.ExecutorPid, "error", err)
		status, serr := executor.ReadExitStatus(cfg.TaskDir().Dir, state.ExecutorPid)
		h.finish(status, serr)
		return nil
	}
	logger.Info("reattached to executor", "executor_pid", state.ExecutorPid)
	go h.run()
	return nil
}

func (d *Driver) WaitTask(ctx context.Context, taskID string) (<-chan *drivers.ExitResult, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	ch := make(chan *drivers.ExitResult)
	go func() {
		defer close(ch)
		select {
		case <-h.doneCh:
		case <-ctx.Done():
			return
		case <-d.ctx.Done():
			return
		}
		select {
		case ch <- h.result():
		case <-ctx.Done():
		case <-d.ctx.Done():
		}
	}()
	return ch, nil
}

// logsRequest says where and how the task's executor writes its logs:
// alloc/logs/<task>.stdout.N and .stderr.N, rotated as the plugin config's
// logs block says unless the task's overrides it; nil when Nomad's logmon
// collects them (logs.collector = "logmon").
func (d *Driver) logsRequest(cfg *drivers.TaskConfig, tc *TaskConfig) (*proto.Logs, error) {
	if !d.config.ExecutorWritesLogs() {
		if tc.Logs.MaxFiles != 0 || tc.Logs.MaxFileSize != 0 {
			return nil, executor.JobErrorf("invalid task config: logs: this node's wasm driver leaves logs to Nomad's logmon (plugin config logs.collector = %q), which rotates them as the job's logs block says: move max_files and max_file_size to the task's logs block", LogsByNomad)
		}
		return nil, nil
	}
	files, size := d.config.Logs.MaxFiles, d.config.Logs.MaxFileSize
	if tc.Logs.MaxFiles != 0 {
		files = tc.Logs.MaxFiles
	}
	if tc.Logs.MaxFileSize != 0 {
		size = tc.Logs.MaxFileSize
	}
	return &proto.Logs{Dir: cfg.TaskDir().LogDir, Name: cfg.Name, MaxFiles: int32(files), MaxFileBytes: int64(size) << 20}, nil
}

// stopGrace is how long StopTask waits, beyond the task's timeout, for the
// executor to answer and for a killed executor to be seen gone.
const stopGrace = 5 * time.Second

func (d *Driver) StopTask(taskID string, timeout time.Duration, signal string) error {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return drivers.ErrTaskNotFound
	}
	if !h.IsRunning() {
		return nil
	}
	sig, known := parseSignal(signal)
	if !known {
		h.logger.Warn("unknown kill signal; stopping the guest as for SIGTERM", "signal", signal)
	}
	ctx, cancel := context.WithTimeout(d.ctx, timeout+stopGrace)
	defer cancel()
	exited, err := h.exec.Stop(ctx, sig, timeout)
	switch {
	case errors.Is(err, executor.ErrExecutorLost):
		// It went away before answering: it exits as soon as its guest's
		// status is collected, which can come first. Its status, or its
		// loss, is the task's result (taskHandle.run).
		h.logger.Debug("the executor went away while its guest was being stopped", "error", err)
		h.exec.End()
	case err != nil || !exited:
		h.logger.Warn("guest did not stop in time; killing it", "timeout", timeout, "shared_executor", h.exec.Shared(), "error", err)
		h.markKilled()
		h.exec.End()
	}
	select {
	case <-h.doneCh:
		return nil
	case <-time.After(stopGrace):
		return fmt.Errorf("task %s did not report its exit after being stopped", taskID)
	}
}

func (d *Driver) DestroyTask(taskID string, force bool) error {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		// Already destroyed: destroying is idempotent.
		return nil
	}
	if h.IsRunning() {
		if !force {
			return fmt.Errorf("cannot destroy running task %s: stop it first, or destroy with force", taskID)
		}
		h.markKilled()
	}
	if h.exec != nil {
		h.exec.End()
	}
	removeCgroups(h.state.Cgroups)
	if h.IsRunning() {
		select {
		case <-h.doneCh:
		case <-time.After(stopGrace):
			h.logger.Warn("task did not report its exit after its executor was killed")
		}
	}
	d.tasks.Delete(taskID)
	return nil
}

func (d *Driver) InspectTask(taskID string) (*drivers.TaskStatus, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	return h.TaskStatus(), nil
}

func (d *Driver) TaskStats(ctx context.Context, taskID string, interval time.Duration) (<-chan *cstructs.TaskResourceUsage, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	out := make(chan *cstructs.TaskResourceUsage)
	if !h.IsRunning() {
		go func() { <-ctx.Done(); close(out) }()
		return out, nil
	}
	in, err := h.exec.Stats(ctx, interval)
	if err != nil {
		return nil, err
	}
	go func() {
		defer close(out)
		for {
			var s *proto.StatsResponse
			select {
			case <-ctx.Done():
				return
			case s, ok = <-in:
				if !ok {
					return
				}
			}
			u := d.usage(s)
			if m := cgroupMemoryUsage(h.state.memoryCgroup()); m > 0 {
				// What the task's memory cgroup accounts: the executor and
				// its guest, page cache included.
				u.ResourceUsage.MemoryStats.Usage = m
			}
			select {
			case out <- u:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// usage converts the executor's stats. An executor of its own is the task:
// its process's RSS and CPU are the task's. In the shared executor the
// task's memory is its guest's linear memory (Usage; exact) and its CPU
// its guest's thread's; the process's RSS, shared by all its tasks, is
// the Pids entry "shared-executor-<pid>", never the task's own. The
// guest's linear memory is also its own entry in Pids, under the key
// "wasm-linear-memory".
func (d *Driver) usage(s *proto.StatsResponse) *cstructs.TaskResourceUsage {
	cpu := &cstructs.CpuStats{
		UserMode:   s.CpuUserPercent,
		SystemMode: s.CpuSystemPercent,
		Percent:    s.CpuPercent,
		TotalTicks: d.ticks(s.CpuPercent),
		Measured:   []string{"User Mode", "System Mode", "Percent", "Total Ticks"},
	}
	linear := &cstructs.ResourceUsage{
		MemoryStats: &cstructs.MemoryStats{Usage: s.LinearMemoryBytes, Measured: []string{"Usage"}},
		CpuStats:    &cstructs.CpuStats{},
	}
	if s.Shared {
		// The guest's thread's CPU clock does not tell user from system
		// time: only the total is measured.
		cpu.UserMode, cpu.SystemMode, cpu.Measured = 0, 0, []string{"Percent", "Total Ticks"}
		return &cstructs.TaskResourceUsage{
			ResourceUsage: &cstructs.ResourceUsage{MemoryStats: linear.MemoryStats, CpuStats: cpu},
			Timestamp:     s.TimestampUnixNano,
			Pids: map[string]*cstructs.ResourceUsage{
				"shared-executor-" + strconv.Itoa(int(s.Pid)): {
					MemoryStats: &cstructs.MemoryStats{RSS: s.RssBytes, Measured: []string{"RSS"}},
					CpuStats:    &cstructs.CpuStats{},
				},
				"wasm-linear-memory": linear,
			},
		}
	}
	proc := &cstructs.ResourceUsage{
		MemoryStats: &cstructs.MemoryStats{
			RSS:      s.RssBytes,
			Usage:    s.RssBytes,
			Measured: []string{"RSS", "Usage"},
		},
		CpuStats: cpu,
	}
	return &cstructs.TaskResourceUsage{
		ResourceUsage: proc,
		Timestamp:     s.TimestampUnixNano,
		Pids: map[string]*cstructs.ResourceUsage{
			strconv.Itoa(int(s.Pid)): proc,
			"wasm-linear-memory":     linear,
		},
	}
}

// ticks converts a percentage of one core into MHz of the node's compute,
// as Nomad accounts CPU.
func (d *Driver) ticks(percent float64) float64 {
	if d.compute.NumCores == 0 {
		return 0
	}
	return percent / 100 * float64(d.compute.TotalCompute) / float64(d.compute.NumCores)
}

// parseSignal maps a signal name (SIGTERM, TERM, sigterm) to its number.
// An unknown name yields SIGTERM and false.
func parseSignal(name string) (syscall.Signal, bool) {
	if name == "" {
		return syscall.SIGTERM, true
	}
	sig, err := signals.Parse(name)
	if err != nil {
		return syscall.SIGTERM, false
	}
	s, ok := sig.(syscall.Signal)
	if !ok {
		return syscall.SIGTERM, false
	}
	return s, true
}

func (d *Driver) TaskEvents(ctx context.Context) (<-chan *drivers.TaskEvent, error) {
	return d.eventer.TaskEvents(ctx)
}

func (d *Driver) SignalTask(taskID string, signal string) error {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return drivers.ErrTaskNotFound
	}
	sig, known := parseSignal(signal)
	if !known || sig != syscall.SIGINT && sig != syscall.SIGTERM {
		return fmt.Errorf("signal %q cannot be delivered to a wasm task: %w", signal, executor.ErrSignalUnsupported)
	}
	if !h.IsRunning() {
		return fmt.Errorf("task %s is not running", taskID)
	}
	return h.exec.Signal(d.ctx, sig)
}
