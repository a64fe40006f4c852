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
	"strconv"
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

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/cgroups"
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
	d.shared.configure(sharedDir(config.CacheDir), sharedUser, config.WarmModules)
	if config.SharedExecutor {
		// Tasks go to the shared executor, which is always ready: no spare.
		d.executors.setWarm(nil)
		return nil
	}
	// Have an executor ready for the first task.
	d.executors.setWarm(config.spareWarm(config.WarmModules))
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
	cg, cgErr := cgroups.Version()
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
	go h.relayNotices()
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
	cgroups.Remove(h.state.Cgroups)
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
			if m := cgroups.MemoryUsage(h.state.memoryCgroup()); m > 0 {
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
	err := h.exec.Signal(d.ctx, sig)
	if errors.Is(err, executor.ErrExecutorLost) {
		// It went away before answering: a stopped guest's executor exits
		// as soon as its status is collected, which can come before the
		// answer. Delivered if the task then ends (its status, or its
		// loss, is the task's result: taskHandle.run), as for StopTask;
		// else the connection failed, not the executor, and the signal
		// may not have reached it.
		select {
		case <-h.doneCh:
			h.logger.Debug("the executor went away while its guest was being signalled", "signal", signal, "error", err)
			return nil
		case <-time.After(stopGrace):
			return err
		}
	}
	return err
}
