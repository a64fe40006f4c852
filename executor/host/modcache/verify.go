// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package modcache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// A compiled entry is native code that every task on the node runs, and
// wazero's own check of it (a CRC32) catches accidents, not a deliberate
// rewrite: a valid entry of another module copied over it loads and runs.
// So each entry's digest is recorded apart from it, when it is written,
// and an entry is loaded only if it matches:
//
//	<dir>/wazero-<version>-<form>/<engine>/<code>/<module sha256>.sha256
//
// holds the SHA-256 over the entry's files (their names and contents, in
// name order), in hex. An entry that does not match, or has no record, is
// compiled again with a warning, never run. Only a privileged executor
// writes entries and records (see Cache.ReadOnly); it makes them
// readable by all (wazero writes its files for their owner only), so that
// executors running as tasks' users can load them, and writable by none
// but root.

// recordPath is where the digest of the entry in dir is recorded.
func recordPath(dir string) string { return dir + ".sha256" }

// entryDigest is the SHA-256 over the files of the entry in dir (names and
// contents, in name order; temporary files of a write in progress are not
// part of it).
func entryDigest(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || strings.HasSuffix(d.Name(), ".tmp") {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		fmt.Fprintf(h, "%s\x00", rel)
		_, err = io.Copy(h, f)
		return err
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// shareEntry makes the entry in dir readable by all and writable by its
// owner only (wazero writes its files 0600 in 0700 directories), changing
// only what differs: entries written before this rule are shared the next
// time a privileged executor loads them.
func shareEntry(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		want := fs.FileMode(0o644)
		if d.IsDir() {
			want = 0o755
		} else if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil || info.Mode().Perm() == want {
			return err
		}
		return os.Chmod(path, want)
	})
}

// recordEntry records the digest of the entry in dir, atomically, and
// shares the entry (shareEntry).
func recordEntry(dir string) error {
	if err := shareEntry(dir); err != nil {
		return err
	}
	sum, err := entryDigest(dir)
	if err != nil {
		return err
	}
	tmp := recordPath(dir) + ".tmp"
	if err := os.WriteFile(tmp, []byte(sum+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, recordPath(dir))
}

// errEntryUnrecorded and errEntryAltered say why an entry cannot be
// trusted.
var (
	errEntryUnrecorded = errors.New("the compiled entry has no recorded digest")
	errEntryAltered    = errors.New("the compiled entry does not match its recorded digest")
)

// entryState is what checkEntry found of an entry.
type entryState struct {
	exists bool
	verr   error // verifyEntry's, where it exists
}

// checkEntry looks for the entry in dir and checks it against its
// recorded digest.
func checkEntry(dir string) entryState {
	if !hasEntry(dir) {
		return entryState{}
	}
	return entryState{exists: true, verr: verifyEntry(dir)}
}

// verifyEntry checks the entry in dir against its recorded digest.
func verifyEntry(dir string) error {
	want, err := os.ReadFile(recordPath(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return errEntryUnrecorded
	}
	if err != nil {
		return err
	}
	got, err := entryDigest(dir)
	if err != nil {
		return err
	}
	if got != strings.TrimSpace(string(want)) {
		return errEntryAltered
	}
	return nil
}
