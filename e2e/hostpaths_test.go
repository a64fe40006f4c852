// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/shoenig/test/must"
)

// TestHostPaths: on the real node, a job sees a host volume through its
// volume_mount and a host directory inside allowed_host_paths through a
// mount block, read-only by default; and a symlink that an artifact
// archive carries out of the task's view leads the guest nowhere.
func TestHostPaths(t *testing.T) {
	root := t.TempDir()
	// An operator's directories for tasks are reachable by the tasks'
	// user (nobody); a temp dir is 0700.
	must.NoError(t, os.Chmod(root, 0o755))
	allowed, vol := filepath.Join(root, "allowed"), filepath.Join(root, "vol")
	for _, d := range []string{allowed, vol} {
		must.NoError(t, os.MkdirAll(d, 0o755))
	}
	must.NoError(t, os.WriteFile(filepath.Join(allowed, "greeting.txt"), []byte("from an allowed path\n"), 0o644))
	must.NoError(t, os.WriteFile(filepath.Join(vol, "v.txt"), []byte("from a host volume\n"), 0o644))

	// An artifact archive holding a symlink to the host's /etc.
	var archive bytes.Buffer
	gz := gzip.NewWriter(&archive)
	tw := tar.NewWriter(gz)
	must.NoError(t, tw.WriteHeader(&tar.Header{Name: "etc", Typeflag: tar.TypeSymlink, Linkname: "/etc", Mode: 0o777}))
	must.NoError(t, tw.Close())
	must.NoError(t, gz.Close())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(archive.Bytes()) }))
	t.Cleanup(srv.Close)

	c := StartCluster(t, ClientOptions{Addr: "127.0.0.1", AllowedHostPaths: []string{allowed}, HostVolumes: map[string]string{"data": vol}})
	probe := `
      artifact {
        source      = "` + c.ArtifactURL + `/probe.wasm"
        destination = "local/"
      }`
	job := c.parseJob(t, `
job "hostpaths" {
  type = "batch"
  group "vol" {
    volume "data" {
      type      = "host"
      source    = "data"
      read_only = true
    }
    restart {
      attempts = 0
      mode     = "fail"
    }
    task "vol" {
      driver = "wasm"
      volume_mount {
        volume      = "data"
        destination = "/vol"
        read_only   = true
      }`+probe+`
      config {
        module = "local/probe.wasm"
        args   = ["cat", "/vol/v.txt"]
      }
    }
  }
  group "mount" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    task "mount" {
      driver = "wasm"`+probe+`
      config {
        module = "local/probe.wasm"
        args   = ["write", "/host/planted.txt", "x"]
        mount {
          host_path  = "`+allowed+`"
          guest_path = "/host"
        }
      }
    }
  }
  group "root" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    task "root" {
      driver = "wasm"
      user   = "root"`+probe+`
      config {
        module = "local/probe.wasm"
      }
    }
  }
  group "symlink" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    task "symlink" {
      driver = "wasm"`+probe+`
      artifact {
        source      = "`+srv.URL+`/links.tar.gz"
        destination = "local/links"
      }
      config {
        module = "local/probe.wasm"
        args   = ["cat", "/local/links/etc/hostname"]
      }
    }
  }
}`, nil)
	c.register(t, job)
	allocs := c.waitAllocs(t, *job.ID, 4, func(a *nomadapi.AllocationListStub) bool {
		return a.ClientStatus == "complete" || a.ClientStatus == "failed"
	})
	byGroup := map[string]*nomadapi.Allocation{}
	for _, a := range allocs {
		byGroup[a.TaskGroup] = a
	}

	a := byGroup["vol"]
	must.Eq(t, "from a host volume\n", c.logs(t, a, "vol", "stdout"))
	must.Eq(t, 0, exitCode(c.taskState(t, a.ID, "vol")))

	// Read-only by default: the write fails and nothing is planted.
	a = byGroup["mount"]
	must.StrContains(t, c.logs(t, a, "mount", "stdout"), "Read-only file system")
	must.Eq(t, 1, exitCode(c.taskState(t, a.ID, "mount")))
	must.FileNotExists(t, filepath.Join(allowed, "planted.txt"))

	// No task runs as root unless the operator allows it.
	a = byGroup["root"]
	must.Eq(t, "failed", a.ClientStatus)
	found := false
	for _, e := range c.taskState(t, a.ID, "root").Events {
		found = found || strings.Contains(e.DisplayMessage, `user = "root" is root, and this node's wasm driver does not run tasks as root`)
	}
	must.True(t, found, must.Sprintf("no event refuses root: %+v", c.taskState(t, a.ID, "root").Events))

	// The archive's symlink either never reached the task (Nomad's
	// artifact sandbox refuses it) or leads the guest nowhere.
	a = byGroup["symlink"]
	ts := c.taskState(t, a.ID, "symlink")
	started := false
	for _, e := range ts.Events {
		started = started || e.Type == nomadapi.TaskStarted
	}
	if !started {
		t.Logf("Nomad refused the artifact with the symlink: %+v", ts.Events)
		return
	}
	must.Eq(t, 1, exitCode(ts))
	out := c.logs(t, a, "symlink", "stdout")
	must.StrContains(t, out, "open /local/links/etc/hostname")
	if host, _ := os.ReadFile("/etc/hostname"); len(host) > 0 {
		must.StrNotContains(t, out, string(host))
	}
}
