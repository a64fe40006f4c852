// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/memory"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/modcache"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// testProgram loads module (a test guest) from the task's /local as a
// task's program made of spec (its Module, View and Entrypoint set here),
// until the test ends; and the module's bytes.
func testProgram(t testing.TB, module string, spec programSpec) (*program, []byte) {
	t.Helper()
	local := t.TempDir()
	testmodule.Install(t, module, local, "app.wasm")
	files, err := openTaskFiles(&proto.StartRequest{Mounts: []*proto.Mount{{GuestPath: "/local", HostPath: local}}})
	must.NoError(t, err)
	t.Cleanup(files.close)
	b, digest, err := files.view.read("/local/app.wasm", 0)
	must.NoError(t, err)
	spec.Module, spec.View, spec.Entrypoint = "/local/app.wasm", files.view, "_start"
	cache := modcache.Cache{Dir: filepath.Join(os.TempDir(), "nomad-driver-wasm-host-test-cache"), Logger: hclog.NewNullLogger(), Validate: validateConfig()}
	p, err := loadProgram(context.Background(), hclog.NewNullLogger(), cache, spec, b, digest, nil)
	must.NoError(t, err)
	t.Cleanup(p.close)
	return p, bytes.Clone(b)
}

// imageProgram is testProgram for engine, capped at 64 MiB.
func imageProgram(t *testing.T, module, engine string) (*program, []byte) {
	return testProgram(t, module, programSpec{Engine: engine, MemoryLimitPages: 64 << 20 / executor.PageSize})
}

// TestInstancesStartFromTheImage: a guest whose data the executor maps
// as a memory image starts every instance with its data as the module
// declares it, and its zeros zero, whatever the instance before wrote
// there: pooled memories (the HTTP trigger's) and fresh ones, with either
// engine.
func TestInstancesStartFromTheImage(t *testing.T) {
	for _, engine := range []string{executor.EngineCompiler, executor.EngineInterpreter} {
		t.Run(engine, func(t *testing.T) {
			if engine == executor.EngineCompiler && !compilerSupported() {
				t.Skip("wazero has no compiler for this platform")
			}
			p, _ := imageProgram(t, "image", engine)
			must.NotNil(t, p.comp.image, must.Sprint("96 KiB of data are mapped"))
			must.Eq(t, runtime.GOOS == "linux", p.comp.image.Mapped())
			pool := &memory.Pool{Max: 1, Size: 64 << 20, Keep: p.minBytes, Image: p.comp.image}
			defer pool.Close()
			for round := range 3 {
				for _, pl := range []*memory.Pool{pool, nil} {
					stdout := &collect{}
					in, err := p.start(runOptions{argv0: "app.wasm", streams: stdio{stdout: stdout, stderr: &collect{}}, pool: pl})
					must.NoError(t, err)
					<-in.ended
					must.Eq(t, int32(0), in.status.ExitCode)
					must.Eq(t, "A M Z 0\n", stdout.String(), must.Sprintf("round %d, pooled %v", round, pl != nil))
				}
			}
		})
	}
}

// TestSplitData: which modules the executor compiles without their data
// section, mapping it instead: a Go module's megabyte, but not a small C
// module's few kilobytes, nor the data of a memory the module imports.
func TestSplitData(t *testing.T) {
	engine, err := resolveEngine(executor.EngineAuto)
	must.NoError(t, err)
	goProgram, goModule := imageProgram(t, "hello-go", engine)
	must.NotNil(t, goProgram.comp.image)
	out, parts := splitData(goModule)
	must.NotNil(t, parts)
	must.Less(t, len(goModule), len(out))

	probe, probeModule := imageProgram(t, "probe", engine)
	must.Nil(t, probe.comp.image)
	out, parts = splitData(probeModule)
	must.Nil(t, parts)
	must.NotEq(t, 0, len(out))

	// (import "env" "memory" (memory 2)) (data (i32.const 0) 70,000 bytes)
	imported := []byte("\x00asm\x01\x00\x00\x00")
	imports := []byte{1, 3, 'e', 'n', 'v', 6, 'm', 'e', 'm', 'o', 'r', 'y', 2, 0, 2}
	imported = append(imported, 2, byte(len(imports)))
	imported = append(imported, imports...)
	data := binary.AppendUvarint([]byte{1, 0, 0x41, 0, 0x0b}, 70000)
	data = append(data, bytes.Repeat([]byte{7}, 70000)...)
	imported = append(imported, 11)
	imported = binary.AppendUvarint(imported, uint64(len(data)))
	imported = append(imported, data...)
	out, parts = splitData(imported)
	must.Nil(t, parts, must.Sprint("an imported memory is not the executor's to lay data into"))
	must.Eq(t, imported, out)

	// (memory 200) (data (i32.const 0) 70,000 bytes) (data (i32.const 10 MiB) 1 byte)
	sparse := []byte("\x00asm\x01\x00\x00\x00\x05\x04\x01\x00\xc8\x01")
	data = binary.AppendUvarint([]byte{2, 0, 0x41, 0, 0x0b}, 70000)
	data = append(data, bytes.Repeat([]byte{7}, 70000)...)
	data = append(data, 0, 0x41, 0x80, 0x80, 0x80, 0x05, 0x0b, 1, 9)
	sparse = append(sparse, 11)
	sparse = binary.AppendUvarint(sparse, uint64(len(data)))
	sparse = append(sparse, data...)
	_, parts = splitData(sparse)
	must.Nil(t, parts, must.Sprint("70 KB of data over a 10 MiB span: most of an image would be holes, filled as guests read them"))
}
