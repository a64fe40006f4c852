// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// TestBadInput starts tasks with every kind of broken module or config and
// checks the error Nomad shows in the task's Driver Failure event.
func TestBadInput(t *testing.T) {
	t.Parallel()
	probe, err := os.ReadFile(testmodule.Path(t, "probe"))
	must.NoError(t, err)
	sum := sha256.Sum256(probe)
	probeSum := hex.EncodeToString(sum[:])
	wrongSum := "0000000000000000000000000000000000000000000000000000000000000000"
	elf, err := os.ReadFile("/bin/true")
	must.NoError(t, err)
	outside := filepath.Join(t.TempDir(), "outside.wasm")
	must.NoError(t, os.WriteFile(outside, probe, 0o644))

	cases := []struct {
		name   string
		module string // test module to install as local/<module>.wasm
		file   []byte // or these bytes as local/app.wasm
		prep   func(t *testing.T, local string)
		memMB  int64
		ports  []string // port labels of the group's network block
		tc     TaskConfig
		want   []string
	}{
		{name: "missing file", tc: TaskConfig{Module: "local/nope.wasm"},
			want: []string{"module local/nope.wasm does not exist in the task's view", "artifact block"}},
		{name: "absolute host path", tc: TaskConfig{Module: "/usr/bin/true"},
			want: []string{`path "/usr/bin/true" is outside the task's view (/local, /alloc, /secrets)`}},
		{name: "dotdot", tc: TaskConfig{Module: "local/../../outside.wasm"},
			want: []string{`path "local/../../outside.wasm" must not contain ".."`}},
		{name: "symlink out of the view", tc: TaskConfig{Module: "local/app.wasm"},
			prep: func(t *testing.T, local string) {
				must.NoError(t, os.Symlink(outside, filepath.Join(local, "app.wasm")))
			},
			want: []string{"module local/app.wasm resolves outside the task's view through a symlink"}},
		{name: "ELF", file: elf,
			want: []string{"not a WebAssembly module: it is an ELF binary", "GOOS=wasip1 GOARCH=wasm"}},
		{name: "text", file: []byte("echo hello\nexit 0\n"),
			want: []string{`not a WebAssembly module: it looks like text (starts with "echo hello")`}},
		{name: "WAT", file: []byte("(module\n  (func (export \"_start\")))\n"),
			want: []string{"WebAssembly text format (WAT); compile it to binary first"}},
		{name: "empty", file: []byte{},
			want: []string{"the file is empty: expected a WebAssembly module"}},
		{name: "truncated", file: probe[:len(probe)/2],
			want: []string{"the module is truncated or malformed: section"}},
		{name: "malformed", file: []byte("\x00asm\x01\x00\x00\x00\x01\x03\xff\xff\xff"),
			want: []string{"is malformed or uses WebAssembly features this node does not support"}},
		{name: "component", file: []byte("\x00asm\x0d\x00\x01\x00"),
			want: []string{"this is a WebAssembly component (WASI preview 2), and components are not supported", "wasm32-wasip1"}},
		{name: "sha256 mismatch", module: "probe", tc: TaskConfig{Sha256: wrongSum},
			want: []string{"has SHA-256 " + probeSum + ", but the task's sha256 is " + wrongSum}},
		{name: "sha256 not a digest", module: "probe", tc: TaskConfig{Sha256: "abc"},
			want: []string{`sha256 "abc" is not a SHA-256 digest`}},
		{name: "unprovided imports", module: "imports",
			want: []string{"imports what this node does not provide: env.host_magic, env.host_other", "WASI preview 1 (wasi_snapshot_preview1)"}},
		{name: "missing entrypoint", module: "reactor",
			want: []string{`does not export the entrypoint function "_start"; it exports _initialize, run`}},
		{name: "named entrypoint missing", module: "probe", tc: TaskConfig{Entrypoint: "serve"},
			want: []string{`does not export the entrypoint function "serve"; it exports _start`}},
		{name: "memory minimum above cap", module: "bigmem", memMB: 64,
			want: []string{"needs at least 128 MiB of linear memory (2048 pages), more than this task's cap of 64 MiB (1024 pages, from resources.memory = 64 MiB)"}},
		{name: "listener without ports", module: "probe", tc: TaskConfig{Listeners: []string{"http"}},
			want: []string{`listeners names port "http", but the group has no ports: add network { port "http" {} } to the task group`}},
		{name: "listener not in the network block", module: "probe", tc: TaskConfig{Listeners: []string{"http"}}, ports: []string{"admin", "web"},
			want: []string{`listeners names port "http", which is not in the group's network block (its ports: admin, web)`}},
		{name: "http port not in the network block", module: "wagi", tc: TaskConfig{HTTP: HTTPConfig{Port: "api", MaxConcurrency: 1, Timeout: "1s"}}, ports: []string{"web"},
			want: []string{`http.port names port "api", which is not in the group's network block (its ports: web)`}},
		{name: "metrics port not in the network block", module: "wagi", tc: TaskConfig{HTTP: HTTPConfig{Port: "web", MetricsPort: "prom", MaxConcurrency: 1, Timeout: "1s"}}, ports: []string{"web"},
			want: []string{`http.metrics_port names port "prom"`}},
		{name: "listeners and http", module: "wagi", tc: TaskConfig{Listeners: []string{"web"}, HTTP: HTTPConfig{Port: "web", MaxConcurrency: 1, Timeout: "1s"}}, ports: []string{"web"},
			want: []string{"listeners and http conflict"}},
		{name: "http timeout", module: "wagi", tc: TaskConfig{HTTP: HTTPConfig{Port: "web", MaxConcurrency: 1, Timeout: "soon"}}, ports: []string{"web"},
			want: []string{`http.timeout = "soon" is not a positive duration`}},
		{name: "http concurrency", module: "wagi", tc: TaskConfig{HTTP: HTTPConfig{Port: "web", MaxConcurrency: 0, Timeout: "1s"}}, ports: []string{"web"},
			want: []string{"http.max_concurrency = 0: it must be between 1 and 10000"}},
		{name: "http with a reactor entrypoint", module: "wagi", tc: TaskConfig{Entrypoint: "run", HTTP: HTTPConfig{Port: "web", MaxConcurrency: 1, Timeout: "1s"}}, ports: []string{"web"},
			want: []string{`entrypoint "run" and http conflict`}},
		{name: "listener labels that clash", module: "probe", tc: TaskConfig{Listeners: []string{"a-b", "a_b"}}, ports: []string{"a-b", "a_b"},
			want: []string{`listeners: "a-b" and "a_b" both give the guest WASM_LISTENER_A_B`}},
	}
	h := newHarness(t, "")
	events := h.events(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.memMB == 0 {
				c.memMB = 256
			}
			if c.tc.Module == "" && c.module == "" {
				c.tc.Module = "local/app.wasm"
			}
			tk := h.newTask(t, c.module, c.memMB, c.tc)
			local := tk.cfg.TaskDir().LocalDir
			if c.file != nil {
				must.NoError(t, os.WriteFile(filepath.Join(local, "app.wasm"), c.file, 0o644))
			}
			if c.prep != nil {
				c.prep(t, local)
			}
			if c.ports != nil {
				ports := structs.AllocatedPorts{}
				for i, l := range c.ports {
					ports = append(ports, structs.AllocatedPortMapping{Label: l, Value: 20000 + i, HostIP: "127.0.0.1"})
				}
				tk.cfg.Resources.Ports = &ports
			}
			_, _, err := h.StartTask(tk.cfg)
			must.Error(t, err)
			for _, want := range c.want {
				must.StrContains(t, err.Error(), want)
			}
			// The job's author must fix it: restarting will not help, and
			// the event says so.
			must.False(t, structs.IsRecoverable(err), must.Sprint(err))
			ev := waitEvent(t, events, tk.cfg.ID, "Rejected by the wasm driver (fix the job; restarting will not help): ")
			must.Eq(t, "job", ev.Annotations["error_class"])
			must.StrContains(t, ev.Message, c.want[0])
			// Nothing is left running or registered.
			_, err = h.driver.InspectTask(tk.cfg.ID)
			must.ErrorIs(t, err, drivers.ErrTaskNotFound)
		})
	}
}
