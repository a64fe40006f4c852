// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package logfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/shoenig/test/must"
)

// readStream returns the stream's files, by index, with their contents.
func readStream(t *testing.T, dir, base string) map[int]string {
	t.Helper()
	root, err := os.OpenRoot(dir)
	must.NoError(t, err)
	defer root.Close()
	l := &Writer{dir: root, base: base}
	indexes, err := l.indexes()
	must.NoError(t, err)
	out := map[int]string{}
	for _, i := range indexes {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%s.%d", base, i)))
		must.NoError(t, err)
		out[i] = string(b)
	}
	return out
}

// TestLogFileRotates: Nomad's naming (<base>.<n>), a new file once the
// current one is full, at a line break when the line fits, at most
// maxFiles files, and the highest-numbered file continued after a reopen.
func TestLogFileRotates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := openTestLog(t, dir, "web.stdout", Options{MaxFiles: 3, MaxBytes: 20})
	must.NoError(t, err)
	_, err = l.Write([]byte("line one\nline two\n")) // 18 bytes
	must.NoError(t, err)
	_, err = l.Write([]byte("line three\n")) // does not fit in 2 bytes: next file
	must.NoError(t, err)
	must.Eq(t, map[int]string{0: "line one\nline two\n", 1: "line three\n"}, readStream(t, dir, "web.stdout"))

	// Output without a line break, longer than a file, is cut where files
	// are full; the oldest file goes.
	_, err = l.Write([]byte(strings.Repeat("x", 45)))
	must.NoError(t, err)
	must.Eq(t, map[int]string{1: "line three\n" + strings.Repeat("x", 9), 2: strings.Repeat("x", 20), 3: strings.Repeat("x", 16)},
		readStream(t, dir, "web.stdout"), must.Sprint("at most max_files files"))
	must.NoError(t, l.Close())
	must.NoError(t, l.Close())
	_, err = l.Write([]byte("late"))
	must.ErrorIs(t, err, os.ErrClosed)

	// Reopened (a restarted executor), it continues the last file; a
	// line that fits a file of its own is not split.
	l, err = openTestLog(t, dir, "web.stdout", Options{MaxFiles: 3, MaxBytes: 20})
	must.NoError(t, err)
	_, err = l.Write([]byte("ok\n"))
	must.NoError(t, err)
	_, err = l.Write([]byte("again\n"))
	must.NoError(t, err)
	must.NoError(t, l.Close())
	got := readStream(t, dir, "web.stdout")
	must.Eq(t, strings.Repeat("x", 16)+"ok\n", got[3])
	must.Eq(t, "again\n", got[4])
	// Another stream's files, and files that are not the stream's, are
	// left alone.
	must.NoError(t, os.WriteFile(filepath.Join(dir, "web.stderr.0"), []byte("e"), 0o644))
	must.NoError(t, os.WriteFile(filepath.Join(dir, "web.stdout.fifo"), nil, 0o644))
	l, err = openTestLog(t, dir, "web.stdout", Options{MaxFiles: 1, MaxBytes: 20})
	must.NoError(t, err)
	_, err = l.Write([]byte(strings.Repeat("y\n", 20)))
	must.NoError(t, err)
	must.NoError(t, l.Close())
	must.MapLen(t, 1, readStream(t, dir, "web.stdout"))
	must.FileExists(t, filepath.Join(dir, "web.stderr.0"))
	must.FileExists(t, filepath.Join(dir, "web.stdout.fifo"))
}

// TestLogFileConcurrentWriters: the HTTP trigger's requests write the
// task's stderr at once; no write is lost or interleaved.
func TestLogFileConcurrentWriters(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := openTestLog(t, dir, "web.stderr", Options{MaxFiles: 1000, MaxBytes: 4096})
	must.NoError(t, err)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				_, err := fmt.Fprintf(l, "writer %d line %d\n", w, i)
				must.NoError(t, err)
			}
		})
	}
	wg.Wait()
	must.NoError(t, l.Close())
	lines := 0
	for _, content := range readStream(t, dir, "web.stderr") {
		for _, line := range strings.Split(strings.TrimSuffix(content, "\n"), "\n") {
			must.StrHasPrefix(t, "writer ", line)
			lines++
		}
	}
	must.Eq(t, 8*200, lines)
}

func TestLogFileRefusesNoRoom(t *testing.T) {
	t.Parallel()
	_, err := openTestLog(t, t.TempDir(), "web.stdout", Options{MaxFiles: 0, MaxBytes: 10})
	must.ErrorContains(t, err, "at least one file")
}

// openTestLog opens a log stream in dir through a root of its own, closed
// when the test ends.
func openTestLog(t *testing.T, dir, base string, opts Options) (*Writer, error) {
	t.Helper()
	root, err := os.OpenRoot(dir)
	must.NoError(t, err)
	t.Cleanup(func() { _ = root.Close() })
	return Open(root, base, opts)
}

// TestLogFileRotatesByDescriptor: rotation creates the next file and
// removes the oldest through the directory's descriptor, so it goes on
// when the directory's path no longer leads to it (as for an executor that
// has become the task's user under a Nomad data_dir of mode 0700; here the
// directory is moved away, which root's permissions cannot see past).
func TestLogFileRotatesByDescriptor(t *testing.T) {
	t.Parallel()
	top := t.TempDir()
	dir := filepath.Join(top, "logs")
	must.NoError(t, os.Mkdir(dir, 0o777))
	l, err := openTestLog(t, dir, "web.stdout", Options{MaxFiles: 2, MaxBytes: 10})
	must.NoError(t, err)
	moved := filepath.Join(top, "elsewhere")
	must.NoError(t, os.Rename(dir, moved))
	for _, line := range []string{"one 4567\n", "two 4567\n", "three 67\n"} {
		_, err := l.Write([]byte(line))
		must.NoError(t, err)
	}
	must.NoError(t, l.Close())
	must.Eq(t, map[int]string{1: "two 4567\n", 2: "three 67\n"}, readStream(t, moved, "web.stdout"))
}

// TestLogFileKeepsOutputWhenRotationFails: a next file that cannot be
// created (here its name is taken by a directory) is reported once, and
// output goes on into the current file rather than being lost.
func TestLogFileKeepsOutputWhenRotationFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	must.NoError(t, os.Mkdir(filepath.Join(dir, "web.stdout.1"), 0o755))
	var reported []error
	l, err := openTestLog(t, dir, "web.stdout", Options{MaxFiles: 2, MaxBytes: 10, OnRotateError: func(err error) { reported = append(reported, err) }})
	must.NoError(t, err)
	for _, line := range []string{"one 4567\n", "two 4567\n", "three 67\n"} {
		_, err := l.Write([]byte(line))
		must.NoError(t, err)
	}
	must.NoError(t, l.Close())
	must.Len(t, 1, reported)
	b, err := os.ReadFile(filepath.Join(dir, "web.stdout.0"))
	must.NoError(t, err)
	must.Eq(t, "one 4567\ntwo 4567\nthree 67\n", string(b))
}

// TestLogFileNeverHoldsMoreThanMaxFiles: a reader listing the directory
// while output floods through many rotations never sees more than
// max_files of the stream's files (Nomad's logs API lists it so).
func TestLogFileNeverHoldsMoreThanMaxFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := openTestLog(t, dir, "web.stdout", Options{MaxFiles: 3, MaxBytes: 64})
	must.NoError(t, err)
	done := make(chan struct{})
	most := make(chan int)
	go func() {
		seen := 0
		for {
			select {
			case <-done:
				most <- seen
				return
			default:
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				continue
			}
			n := 0
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), "web.stdout.") {
					n++
				}
			}
			seen = max(seen, n)
		}
	}()
	line := []byte(strings.Repeat("x", 31) + "\n")
	for range 2000 { // 1,000 rotations
		_, err := l.Write(line)
		must.NoError(t, err)
	}
	close(done)
	must.LessEq(t, 3, <-most)
	must.NoError(t, l.Close())
	must.Eq(t, 3, len(readStream(t, dir, "web.stdout")))
}
