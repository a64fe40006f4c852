// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package logfile writes a task's output streams into Nomad's rotated log
// files (<dir>/<base>.<index>), as logmon would, from a descriptor of the
// log directory.
//
// It is the executor's: the driver declares DisableLogCollection, so Nomad
// starts no logmon per task, and the executor writes the guest's stdout and
// stderr itself. It must not resolve the log directory's path (an executor
// that has become the task's user cannot: a Nomad client's data_dir is
// 0700), must not buffer what a guest wrote (nothing may be lost when the
// executor is killed), and uses the standard library only: it knows
// neither wazero nor the executor's protocol.
package logfile

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Writer is one of a task's output streams, in Nomad's naming and
// rotation: <dir>/<base>.<index>, the highest index the current file, a
// new file once the current one holds Options.MaxBytes, at most
// Options.MaxFiles files (the oldest removed). nomad alloc logs, alloc fs
// and the UI read these files as they read logmon's.
//
// It is not Nomad's FileRotator (client/logmon/logging), which imports
// cleanly, because of what that one is built for, a process of its own per
// task: it buffers 64 KiB per stream and flushes from a goroutine woken
// every 100 ms (two buffers and twenty wake-ups a second per idle task),
// loses what it buffered when its process is killed (here, the executor of
// a guest stuck in the kernel), and its Write is not safe for concurrent
// writers (the HTTP trigger's requests write the task's stderr at once).
// This one writes each guest write through at once: output is in the file
// as soon as the guest wrote it, and nothing is lost when the executor is
// killed. Like Nomad's, it continues the highest-numbered file after a
// restart, and avoids splitting a line across two files when the line
// fits.
//
// It works from a descriptor of the log directory, never from its path:
// an executor that has become the task's user cannot resolve the path (a
// Nomad client's data_dir is 0700), but the directory itself (alloc/logs,
// 0777) takes its new files.
type Writer struct {
	dir      *os.Root
	base     string
	maxFiles int
	maxBytes int64

	// onRotateError, when set, hears of the first failure to rotate.
	onRotateError func(error)

	mu     sync.Mutex
	f      *os.File
	index  int
	size   int64
	closed bool
	// rotateErr: rotation has failed, and has been reported.
	rotateErr bool
}

// rotateFailed reports the first failure to rotate.
func (l *Writer) rotateFailed(err error) {
	if l.rotateErr {
		return
	}
	l.rotateErr = true
	if l.onRotateError != nil {
		l.onRotateError(err)
	}
}

// Options says how a stream's files rotate: Nomad's logs block.
type Options struct {
	// MaxFiles is how many files of the stream are kept (Nomad's
	// max_files): at least one.
	MaxFiles int
	// MaxBytes is the size of a full file (Nomad's max_file_size, in
	// bytes): at least one.
	MaxBytes int64
	// OnRotateError, when set, hears of the first failure to start the
	// next file; output then goes on into the current one, past its size,
	// rather than being lost.
	OnRotateError func(error)
}

// Open opens the stream base (e.g. "web.stdout") in the directory dir,
// continuing its highest-numbered file. The writer holds a descriptor of
// its own of the directory; the caller keeps dir.
func Open(dir *os.Root, base string, opts Options) (_ *Writer, err error) {
	if opts.MaxFiles < 1 || opts.MaxBytes < 1 {
		return nil, fmt.Errorf("log rotation needs at least one file of at least one byte (max_files = %d, max_file_size = %d bytes)", opts.MaxFiles, opts.MaxBytes)
	}
	own, err := dir.OpenRoot(".")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = own.Close()
		}
	}()
	l := &Writer{dir: own, base: base, maxFiles: opts.MaxFiles, maxBytes: opts.MaxBytes, onRotateError: opts.OnRotateError}
	indexes, err := l.indexes()
	if err != nil {
		return nil, err
	}
	if len(indexes) > 0 {
		l.index = indexes[len(indexes)-1]
	}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

// indexes lists the indexes of the stream's files, in order.
func (l *Writer) indexes() ([]int, error) {
	d, err := l.dir.Open(".")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), l.base+".")
		if !ok || e.IsDir() {
			continue
		}
		if n, err := strconv.Atoi(rest); err == nil && n >= 0 {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// name is the name of the stream's file number index.
func (l *Writer) name(index int) string { return l.base + "." + strconv.Itoa(index) }

func (l *Writer) open() error {
	f, err := l.dir.OpenFile(l.name(l.index), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return err
	}
	l.f, l.size = f, st.Size()
	return nil
}

// rotate moves to the next file and removes the files beyond maxFiles.
// The directory never holds more than maxFiles of the stream's files (but
// for an instant when maxFiles is 1), not even for an instant (a reader listing it, Nomad's logs API among them,
// would see one too many): the next file is made under a name that is not
// the stream's (nextName), the oldest files are removed, and only then is
// it renamed into place. Nothing is removed before the next file exists:
// when it cannot be made, output goes on into the current file, past its
// size, and the failure is reported once (Options.OnRotateError), rather
// than lost.
func (l *Writer) rotate() error {
	tmp := l.nextName()
	next, err := l.dir.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	indexes, err := l.indexes()
	if err == nil {
		// Room for the next file, among the files before the current one.
		for len(indexes)+1 > l.maxFiles && indexes[0] != l.index {
			_ = l.dir.Remove(l.name(indexes[0]))
			indexes = indexes[1:]
		}
		err = l.dir.Rename(tmp, l.name(l.index+1))
	}
	if err != nil {
		_ = next.Close()
		_ = l.dir.Remove(tmp)
		return err
	}
	_ = l.f.Close()
	if l.maxFiles == 1 {
		// Only once the next file is in place, so that output never goes
		// into a removed file: for an instant, two files.
		_ = l.dir.Remove(l.name(l.index))
	}
	l.f, l.size = next, 0
	l.index++
	return nil
}

// nextName is the name the next file is made under before it takes its
// place: hidden, and not the stream's (<base>.<n>).
func (l *Writer) nextName() string { return "." + l.base + ".next" }

// Write writes p through to the current file, moving to the next file
// when the current one is full: at the last line break that fits, when p
// has one, else where the current file is full.
func (l *Writer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, os.ErrClosed
	}
	written := 0
	for len(p) > 0 {
		n := l.fits(p)
		if n == 0 {
			if err := l.rotate(); err != nil {
				l.rotateFailed(err)
				n = len(p)
			} else {
				continue
			}
		}
		m, err := l.f.Write(p[:n])
		l.size += int64(m)
		written += m
		p = p[m:]
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// fits says how much of p goes into the current file: all of it when it
// fits; else up to the last line break that fits; else nothing when the
// first line fits a file of its own (it starts the next file); else what
// fits. Nothing also when the current file is full.
func (l *Writer) fits(p []byte) int {
	room := l.maxBytes - l.size
	if int64(len(p)) <= room {
		return len(p)
	}
	if room <= 0 {
		return 0
	}
	n := int(room)
	if i := bytes.LastIndexByte(p[:n], '\n'); i >= 0 {
		return i + 1
	}
	if i := bytes.IndexByte(p, '\n'); l.size > 0 && i >= 0 && int64(i+1) <= l.maxBytes {
		return 0
	}
	return n
}

// Close closes the current file; later writes fail. It may be called more
// than once.
func (l *Writer) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	err := l.f.Close()
	if derr := l.dir.Close(); err == nil {
		err = derr
	}
	return err
}
