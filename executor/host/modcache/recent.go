// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package modcache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

// recentDir holds the copies of recently started modules.
func (c Cache) recentDir() string { return filepath.Join(c.Dir, "recent") }

// Remember records that module b (whose SHA-256 is digest) has just
// started: its copy in recent/ is written, or its time renewed.
func (c Cache) Remember(digest string, b []byte) error {
	dir := c.recentDir()
	p := filepath.Join(dir, digest+".wasm")
	now := time.Now()
	if err := os.Chtimes(p, now, now); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, digest+".*.tmp")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
	}
	return err
}

// Recent is a module in recent/: its SHA-256 and the path of its copy.
type Recent struct {
	Digest, Path string
}

// Recent lists up to n modules started within executor.RecentWindow: first
// those of first (digests, most recent first) that have a copy, then the
// others by the time of their last start, and removes copies older than
// the window.
func (c Cache) Recent(n int, first []string) []Recent {
	entries, err := os.ReadDir(c.recentDir())
	if err != nil {
		return nil
	}
	type found struct {
		Recent
		at time.Time
	}
	var all []found
	for _, e := range entries {
		digest, ok := strings.CutSuffix(e.Name(), ".wasm")
		info, err := e.Info()
		if !ok || err != nil || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(c.recentDir(), e.Name())
		if time.Since(info.ModTime()) > executor.RecentWindow {
			_ = os.Remove(p)
			continue
		}
		all = append(all, found{Recent{Digest: digest, Path: p}, info.ModTime()})
	}
	rank := func(f found) int {
		if i := slices.Index(first, f.Digest); i >= 0 {
			return i
		}
		return len(first)
	}
	slices.SortFunc(all, func(a, b found) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return b.at.Compare(a.at)
	})
	var out []Recent
	for _, f := range all[:min(n, len(all))] {
		out = append(out, f.Recent)
	}
	return out
}

// Read reads the copy of m and checks that it is what its name says; one
// that is not is removed.
func (m Recent) Read() ([]byte, error) {
	b, err := os.ReadFile(m.Path)
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != m.Digest {
		_ = os.Remove(m.Path)
		return nil, executor.NodeErrorf("recent module %s does not match its digest; removed", m.Path)
	}
	return b, nil
}
