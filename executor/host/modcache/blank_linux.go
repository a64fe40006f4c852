// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package modcache

import (
	"context"
	"fmt"
	"os"
	"strconv"

	"github.com/tetratelabs/wazero"
	"golang.org/x/sys/unix"
)

// blankCache makes a compilation cache whose directory is a descriptor of
// this process (/proc/self/fd/<fd>), which pointAt points at a module's
// entry directory later, and returns the name of the directory wazero
// keeps its entries in below it (its version's). wazero makes that
// directory when the cache is made: the descriptor names a private
// directory then, which is removed at once; until pointAt, the cache's
// directory is gone, and a compile would find nothing and write nothing.
func blankCache() (int, wazero.CompilationCache, string, error) {
	tmp, err := os.MkdirTemp("", "wasm-blank-")
	if err != nil {
		return -1, nil, "", err
	}
	defer os.RemoveAll(tmp)
	fd, err := unix.Open(tmp, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, nil, "", fmt.Errorf("open %s: %w", tmp, err)
	}
	// Where /proc is not mounted, wazero would make the path's
	// directories instead, and the blank's cache would be those.
	byFD := "/proc/self/fd/" + strconv.Itoa(fd)
	if a, err := os.Stat(byFD); err != nil || !sameAs(a, tmp) {
		_ = unix.Close(fd)
		return -1, nil, "", fmt.Errorf("%s does not name the directory it was opened on (is /proc mounted?)", byFD)
	}
	cache, err := wazero.NewCompilationCacheWithDir(byFD)
	if err != nil {
		_ = unix.Close(fd)
		return -1, nil, "", err
	}
	made, err := os.ReadDir(tmp)
	if err == nil && (len(made) != 1 || !made[0].IsDir()) {
		err = fmt.Errorf("%d entries, not the one directory expected", len(made))
	}
	if err != nil {
		_ = cache.Close(context.Background())
		_ = unix.Close(fd)
		return -1, nil, "", fmt.Errorf("wazero's compilation cache in %s: %w", tmp, err)
	}
	return fd, cache, made[0].Name(), nil
}

// sameAs says whether a is the file at path.
func sameAs(a os.FileInfo, path string) bool {
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// pointAt makes descriptor fd name directory dir.
func pointAt(fd int, dir string) error {
	d, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(d)
	return unix.Dup3(d, fd, unix.O_CLOEXEC)
}

func closeFD(fd int) { _ = unix.Close(fd) }
