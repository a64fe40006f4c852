// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// TestProtocolServesTheLauncherOnly: the executor's protocol answers a
// process of root or of its launcher's user, and no other, whoever may
// open its socket (here anyone: the socket is 0777 in a 0755 directory,
// as a shared executor run as nobody leaves its own to nobody's
// processes).
func TestProtocolServesTheLauncherOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs the unit tests as root: this test runs a client as nobody")
		}
		t.Skip("needs root, to run a client as nobody")
	}
	// This test binary, where nobody may run it, is the client.
	dir, err := os.MkdirTemp("", "wasm-protocol-test-")
	must.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	must.NoError(t, os.Chmod(dir, 0o755))
	client := filepath.Join(dir, "client")
	copyExecutable(t, client)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}

	for _, c := range []struct {
		name     string
		launcher uint32
		as       *syscall.Credential
		served   bool
	}{
		{"root, launched by root", 0, nil, true},
		{"nobody, launched by root", 0, nobody, false},
		{"nobody, launched by nobody", 65534, nobody, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			socket := filepath.Join(dir, "executor.sock")
			_ = os.Remove(socket)
			l, err := net.Listen("unix", socket)
			must.NoError(t, err)
			must.NoError(t, os.Chmod(socket, 0o777))
			g := protocolServer(c.launcher, hclog.NewNullLogger())(nil)
			s := newServer(hclog.NewNullLogger(), &logOutput{w: io.Discard})
			proto.RegisterExecutorServer(g, s)
			s.serving(g)
			done := make(chan struct{})
			go func() {
				defer close(done)
				_ = g.Serve(l)
			}()
			defer func() {
				g.Stop()
				<-done
			}()
			cmd := exec.Command(client)
			cmd.Env = append(os.Environ(), dialEnv+"="+socket)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.as}
			out, err := cmd.CombinedOutput()
			if c.served {
				must.NoError(t, err, must.Sprintf("%s", out))
				return
			}
			var exit *exec.ExitError
			must.True(t, errors.As(err, &exit), must.Sprintf("%v: %s", err, out))
			must.Eq(t, dialRefused, exit.ExitCode(), must.Sprintf("%s", out))
		})
	}
}

// copyExecutable copies this test binary to path, mode 0755.
func copyExecutable(t *testing.T, path string) {
	self, err := os.Executable()
	must.NoError(t, err)
	in, err := os.Open(self)
	must.NoError(t, err)
	defer in.Close()
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	must.NoError(t, err)
	_, err = io.Copy(out, in)
	must.NoError(t, err)
	must.NoError(t, out.Close())
}
