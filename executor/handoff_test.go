// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/shoenig/test/must"
)

// TestHandoff: descriptors sent with SendHandoff arrive by name, refer to
// the files that were opened, and the sender hears the answer.
func TestHandoff(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	socket := HandoffSocket(dir, 42)
	must.Eq(t, filepath.Join(dir, "handoff-42.sock"), socket)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	must.NoError(t, err)
	defer ln.Close()

	type got struct {
		id    string
		files map[string]*os.File
		err   error
	}
	received := make(chan got, 1)
	go func() {
		conn, err := ln.AcceptUnix()
		if err != nil {
			received <- got{err: err}
			return
		}
		defer conn.Close()
		id, files, err := ReceiveHandoff(conn)
		if err == nil {
			_, err = conn.Write([]byte{0})
		}
		received <- got{id, files, err}
	}()

	must.NoError(t, os.WriteFile(filepath.Join(dir, "module.wasm"), []byte("\x00asm"), 0o600))
	module, err := os.Open(filepath.Join(dir, "module.wasm"))
	must.NoError(t, err)
	defer module.Close()
	logs, err := os.Open(dir)
	must.NoError(t, err)
	defer logs.Close()
	must.NoError(t, SendHandoff(context.Background(), socket, "task-1", []HandoffFile{{HandoffModule, module}, {HandoffLogDir, logs}}))

	r := <-received
	must.NoError(t, r.err)
	must.Eq(t, "task-1", r.id)
	must.MapLen(t, 2, r.files)
	defer r.files[HandoffModule].Close()
	defer r.files[HandoffLogDir].Close()
	b, err := io.ReadAll(r.files[HandoffModule])
	must.NoError(t, err)
	must.Eq(t, "\x00asm", string(b))
	st, err := r.files[HandoffLogDir].Stat()
	must.NoError(t, err)
	must.True(t, st.IsDir())
}

// TestHandoffRefused: the receiver's error reaches the sender, and a
// socket nobody listens on is an error, not a hang.
func TestHandoffRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	socket := HandoffSocket(dir, 7)
	f, err := os.Open(dir)
	must.NoError(t, err)
	defer f.Close()
	err = SendHandoff(context.Background(), socket, "task", []HandoffFile{{HandoffLogDir, f}})
	must.ErrorContains(t, err, "reach the shared executor's handoff socket")
	must.ErrorIs(t, err, ErrExecutorLost, must.Sprint("a shared executor that cannot be reached is taken for gone, so the task starts in a new one"))

	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	must.NoError(t, err)
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		defer conn.Close()
		_, files, _ := ReceiveHandoff(conn)
		for _, f := range files {
			_ = f.Close()
		}
		_, _ = conn.Write([]byte("not now"))
	}()
	err = SendHandoff(context.Background(), socket, "task", []HandoffFile{{HandoffLogDir, f}})
	<-done
	must.ErrorContains(t, err, "the shared executor refused the task's descriptors: not now")

	tooMany := make([]HandoffFile, MaxHandoffFiles+1)
	err = SendHandoff(context.Background(), socket, "task", tooMany)
	must.ErrorContains(t, err, "at most 64 descriptors")
}
