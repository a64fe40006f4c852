// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/oci"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// TestStartRequest: what the executor is asked to start, for a few task
// configs, from the configs and what was resolved alone: nothing starts.
func TestStartRequest(t *testing.T) {
	t.Parallel()
	const allocDir = "/nomad/alloc/4a1e"
	// task is Nomad's view of a task: 64 MiB, and two ports, http mapped
	// to 8080 inside a namespace.
	task := func() *drivers.TaskConfig {
		return &drivers.TaskConfig{
			ID:         "4a1e/web/0",
			Name:       "web",
			AllocID:    "4a1e",
			AllocDir:   allocDir,
			Env:        map[string]string{"NOMAD_TASK_NAME": "web", "GREETING": "hello"},
			StdoutPath: allocDir + "/alloc/logs/.web.stdout.fifo",
			StderrPath: allocDir + "/alloc/logs/.web.stderr.fifo",
			Resources: &drivers.Resources{
				NomadResources: &structs.AllocatedTaskResources{Memory: structs.AllocatedMemoryResources{MemoryMB: 64}},
				Ports: &structs.AllocatedPorts{
					{Label: "http", Value: 25001, To: 8080, HostIP: "10.0.0.5"},
					{Label: "admin", Value: 25002, HostIP: "10.0.0.5"},
				},
			},
		}
	}
	node := Config{CacheDir: "/var/lib/wasm", Engine: EngineCompiler, MaxModuleBytes: 64 << 20,
		Logs: LogsConfig{MaxFiles: 10, MaxFileSize: 10}}
	mounts := []*proto.Mount{
		{GuestPath: "/local", HostPath: allocDir + "/web/local"},
		{GuestPath: "/alloc", HostPath: allocDir + "/alloc"},
		{GuestPath: "/secrets", HostPath: allocDir + "/web/secrets", ReadOnly: true},
	}
	// command is the request for the task config {module = "local/app.wasm"}.
	command := func() *proto.StartRequest {
		return &proto.StartRequest{
			Module:            "local/app.wasm",
			Env:               map[string]string{"NOMAD_TASK_NAME": "web", "GREETING": "hello"},
			Entrypoint:        "_start",
			MemoryLimitPages:  1024,
			MemoryLimitSource: "resources.memory = 64 MiB",
			StdoutPath:        allocDir + "/alloc/logs/.web.stdout.fifo",
			StderrPath:        allocDir + "/alloc/logs/.web.stderr.fifo",
			StateDir:          allocDir + "/web",
			CacheDir:          "/var/lib/wasm",
			Engine:            EngineCompiler,
			LogFile:           allocDir + "/web/wasm-executor.log",
			LogLevel:          "info",
			MaxModuleBytes:    64 << 20,
			Mounts:            mounts,
			Logs:              &proto.Logs{Dir: allocDir + "/alloc/logs", Name: "web", MaxFiles: 10, MaxFileBytes: 10 << 20},
		}
	}
	pin := strings.Repeat("ab", 32)

	for _, tc := range []struct {
		name   string
		config TaskConfig
		// node, task and resolved change the defaults above.
		node     func(*Config)
		task     func(*drivers.TaskConfig)
		resolved func(*resolved)
		want     func(*proto.StartRequest)
		err      string
	}{{
		name:   "command mode",
		config: TaskConfig{Module: "local/app.wasm", Args: []string{"serve", "--fast"}, Entrypoint: "run", Mounts: []HostMount{{HostPath: "/srv/data", GuestPath: "/data"}}},
		task:   func(c *drivers.TaskConfig) { c.Resources.NomadResources.Memory.MemoryMaxMB = 128 },
		resolved: func(r *resolved) {
			r.mounts = append(r.mounts, executor.Mount{GuestPath: "/data", HostPath: "/srv/data", ReadOnly: true})
			r.runAs = &proto.RunAs{Name: "nobody", Uid: 65534, Gid: 65534}
			r.logLevel = "debug"
		},
		want: func(r *proto.StartRequest) {
			r.Args, r.Entrypoint = []string{"serve", "--fast"}, "run"
			r.MemoryLimitPages, r.MemoryLimitSource = 2048, "resources.memory_max = 128 MiB"
			r.Mounts = append(r.Mounts, &proto.Mount{GuestPath: "/data", HostPath: "/srv/data", ReadOnly: true})
			r.RunAs = &proto.RunAs{Name: "nobody", Uid: 65534, Gid: 65534}
			r.LogLevel = "debug"
		},
	}, {
		name:   "listeners on the host's network",
		config: TaskConfig{Module: "local/app.wasm", Listeners: []string{"http", "admin"}},
		want: func(r *proto.StartRequest) {
			r.Listeners = []*proto.Listener{
				{Label: "http", Address: "10.0.0.5", Port: 25001},
				{Label: "admin", Address: "10.0.0.5", Port: 25002},
			}
		},
	}, {
		name: "http mode in the allocation's network namespace",
		config: TaskConfig{Module: "local/app.wasm", HTTP: HTTPConfig{Port: "http", MetricsPort: "admin", MaxConcurrency: 50, Timeout: "30s",
			MaxBodyBytes: 1 << 20, AccessLog: true}},
		task: func(c *drivers.TaskConfig) {
			c.NetworkIsolation = &drivers.NetworkIsolationSpec{Mode: drivers.NetIsolationModeGroup, Path: "/var/run/netns/4a1e"}
		},
		want: func(r *proto.StartRequest) {
			r.Http = &proto.HTTPTrigger{
				Listener:       &proto.Listener{Label: "http", Address: "0.0.0.0", Port: 8080},
				Metrics:        &proto.Listener{Label: "admin", Address: "0.0.0.0", Port: 25002},
				MaxConcurrency: 50,
				TimeoutNanos:   (30 * time.Second).Nanoseconds(),
				MaxBodyBytes:   1 << 20,
				AccessLog:      true,
			}
			r.NetworkNamespace = "/var/run/netns/4a1e"
		},
	}, {
		name:   "a module pulled from a registry",
		config: TaskConfig{Module: "oci://ghcr.io/acme/app:v1"},
		resolved: func(r *resolved) {
			r.pulled = &oci.Module{File: "/var/lib/wasm/oci/modules/" + pin + ".wasm", Sha256: pin, Manifest: "sha256:" + strings.Repeat("cd", 32)}
		},
		want: func(r *proto.StartRequest) {
			r.Module = "oci://ghcr.io/acme/app:v1"
			r.ModuleFile, r.Sha256, r.ModuleFilePulled = "/var/lib/wasm/oci/modules/"+pin+".wasm", pin, true
		},
	}, {
		name:     "a module preinstalled on the node, pinned",
		config:   TaskConfig{Module: "/opt/wasm/app.wasm", Sha256: pin},
		resolved: func(r *resolved) { r.hostModule = "/opt/wasm/app.wasm" },
		want: func(r *proto.StartRequest) {
			r.Module, r.ModuleFile, r.Sha256 = "/opt/wasm/app.wasm", "/opt/wasm/app.wasm", pin
		},
	}, {
		name:   "the task's logs block overrides the node's rotation",
		config: TaskConfig{Module: "local/app.wasm", Logs: LogsConfig{MaxFiles: 3, MaxFileSize: 1}},
		want: func(r *proto.StartRequest) {
			r.Logs.MaxFiles, r.Logs.MaxFileBytes = 3, 1<<20
		},
	}, {
		name:   "Nomad's logmon writes the logs",
		config: TaskConfig{Module: "local/app.wasm"},
		node:   func(c *Config) { c.Logs.Collector = LogsByNomad },
		want:   func(r *proto.StartRequest) { r.Logs = nil },
	}, {
		name:   "a logs block where Nomad's logmon writes the logs",
		config: TaskConfig{Module: "local/app.wasm", Logs: LogsConfig{MaxFiles: 3}},
		node:   func(c *Config) { c.Logs.Collector = LogsByNomad },
		err:    "move max_files and max_file_size to the task's logs block",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			config, cfg, c := node, task(), tc.config
			if tc.node != nil {
				tc.node(&config)
			}
			if tc.task != nil {
				tc.task(cfg)
			}
			must.NoError(t, c.Validate())
			network, err := networkFor(cfg, &c)
			must.NoError(t, err)
			r := &resolved{mounts: guestMounts(cfg), network: network, logLevel: "info"}
			if tc.resolved != nil {
				tc.resolved(r)
			}

			req, err := startRequest(cfg, &c, &config, r)
			if tc.err != "" {
				must.ErrorContains(t, err, tc.err)
				must.Eq(t, executor.ClassJob, executor.ClassOf(err))
				return
			}
			must.NoError(t, err)
			want := command()
			if tc.want != nil {
				tc.want(want)
			}
			must.Eq(t, want, req, must.Cmp(protocmp.Transform()))
		})
	}
}
