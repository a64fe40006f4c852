// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// ExitStatusFile is the file, in the task's state directory, where an
// executor records how its guest exited before it exits itself. A driver
// that was not attached at that moment (it was restarting) reads the status
// from there instead of from the executor.
//
// Persisted format: JSON of exitRecord. Only add fields.
const ExitStatusFile = "wasm-exit-status.json"

type exitRecord struct {
	// Pid of the executor that wrote the record: a record left by an
	// earlier run of the task must not be taken for the current one.
	Pid      int    `json:"pid"`
	ExitCode int32  `json:"exit_code"`
	Signal   int32  `json:"signal"`
	Error    string `json:"error,omitempty"`
	ExitedAt int64  `json:"exited_at_unix_nano"`
}

// WriteExitStatus records s atomically (write then rename) in the
// directory dir, through its descriptor: an executor that has become the
// task's user can no longer resolve the task directory's path.
func WriteExitStatus(dir *os.Root, s *proto.ExitStatus) error {
	if dir == nil {
		return nil
	}
	b, err := json.Marshal(exitRecord{Pid: os.Getpid(), ExitCode: s.ExitCode, Signal: s.Signal, Error: s.Error, ExitedAt: s.ExitedAtUnixNano})
	if err != nil {
		return err
	}
	tmp := ExitStatusFile + "." + strconv.Itoa(os.Getpid()) + ".tmp"
	f, err := dir.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = dir.Rename(tmp, ExitStatusFile)
	}
	if err != nil {
		_ = dir.Remove(tmp)
	}
	return err
}

// ErrNoExitStatus means the executor did not record an exit status: it was
// killed, or the guest had not exited.
var ErrNoExitStatus = errors.New("the executor recorded no exit status")

// ReadExitStatus returns the exit status that the executor with the given
// pid recorded in dir.
func ReadExitStatus(dir string, pid int) (*proto.ExitStatus, error) {
	b, err := os.ReadFile(filepath.Join(dir, ExitStatusFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoExitStatus
	}
	if err != nil {
		return nil, err
	}
	var r exitRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read %s: %w", ExitStatusFile, err)
	}
	if r.Pid != pid {
		return nil, ErrNoExitStatus
	}
	return &proto.ExitStatus{ExitCode: r.ExitCode, Signal: r.Signal, Error: r.Error, ExitedAtUnixNano: r.ExitedAt}, nil
}
