// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// The handoff: how the driver gives the node's shared executor the
// descriptors of what a task may reach. A shared executor that runs as
// default_user from its start cannot resolve any path under a Nomad
// client's data_dir (mode 0700), so the driver, which runs as root, opens
// the task's directories and files and passes the descriptors over a unix
// socket of the executor's (SCM_RIGHTS) before it sends Start, which takes
// them by the task's ID.
//
// Wire format (persisted in no file, but spoken between a driver and a
// shared executor that may be of an earlier build: only add names): one
// message of a 4-byte big-endian length and a JSON handoffHeader, with
// the descriptors attached, in the order of its names; the executor
// answers with one byte 0, or with an error message, and closes.
//
// The socket is HandoffSocket in the shared executor's directory, which
// only root can enter; the executor also takes handoffs only from root
// (SO_PEERCRED).

// The names of a task's descriptors in a handoff; a mount's is
// HandoffMount followed by its guest path.
const (
	HandoffLogDir   = "logs"
	HandoffStateDir = "state"
	HandoffLogFile  = "log_file"
	HandoffModule   = "module"
	HandoffMount    = "mount:"
)

// MaxHandoffFiles bounds the descriptors of one handoff.
const MaxHandoffFiles = 64

// maxHandoffHeader bounds a handoff's header.
const maxHandoffHeader = 64 << 10

// handoffTimeout bounds a handoff when the caller's context has no
// deadline.
const handoffTimeout = 10 * time.Second

// HandoffSocket is the path of the handoff socket of the shared executor
// with process ID pid, whose files are in dir.
func HandoffSocket(dir string, pid int) string {
	return filepath.Join(dir, "handoff-"+strconv.Itoa(pid)+".sock")
}

type handoffHeader struct {
	TaskID string   `json:"task_id"`
	Names  []string `json:"names"`
}

// HandoffFile is one descriptor of a handoff and its name.
type HandoffFile struct {
	Name string
	File *os.File
}

// SendHandoff hands files over for task taskID to the shared executor
// listening on socket. The caller keeps (and closes) its files. An
// executor that cannot be reached, or that drops the connection, is taken
// for gone: the error wraps ErrExecutorLost.
func SendHandoff(ctx context.Context, socket, taskID string, files []HandoffFile) error {
	if len(files) > MaxHandoffFiles {
		return fmt.Errorf("a task may hand over at most %d descriptors, not %d", MaxHandoffFiles, len(files))
	}
	hdr := handoffHeader{TaskID: taskID}
	fds := make([]int, len(files))
	for i, f := range files {
		hdr.Names = append(hdr.Names, f.Name)
		fds[i] = int(f.File.Fd())
	}
	body, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, handoffTimeout)
		defer cancel()
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return fmt.Errorf("%w: reach the shared executor's handoff socket: %w", ErrExecutorLost, err)
	}
	defer c.Close()
	conn := c.(*net.UnixConn)
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	msg := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	msg = append(msg, body...)
	if _, _, err := conn.WriteMsgUnix(msg, syscall.UnixRights(fds...), nil); err != nil {
		return fmt.Errorf("%w: hand over the task's descriptors: %w", ErrExecutorLost, err)
	}
	reply, err := io.ReadAll(io.LimitReader(conn, 4096))
	switch {
	case err != nil:
		return fmt.Errorf("%w: hand over the task's descriptors: %w", ErrExecutorLost, err)
	case len(reply) == 1 && reply[0] == 0:
		return nil
	case len(reply) == 0:
		return fmt.Errorf("%w: hand over the task's descriptors: the shared executor closed the connection without an answer", ErrExecutorLost)
	}
	return fmt.Errorf("the shared executor refused the task's descriptors: %s", reply)
}

// ReceiveHandoff reads one handoff from conn. The files are the caller's.
func ReceiveHandoff(conn *net.UnixConn) (taskID string, files map[string]*os.File, err error) {
	buf := make([]byte, 4+maxHandoffHeader)
	oob := make([]byte, syscall.CmsgSpace(MaxHandoffFiles*4))
	n, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
	// Whatever happens, every descriptor received is owned by a file, so
	// that none leaks.
	received, perr := parseRights(oob[:oobn])
	defer func() {
		if err != nil {
			for _, f := range received {
				_ = f.Close()
			}
		}
	}()
	switch {
	case err != nil:
		return "", nil, err
	case perr != nil:
		return "", nil, perr
	case flags&syscall.MSG_CTRUNC != 0:
		return "", nil, fmt.Errorf("more than %d descriptors", MaxHandoffFiles)
	case n < 4:
		return "", nil, errors.New("a handoff without its header")
	}
	size := int(binary.BigEndian.Uint32(buf[:4]))
	if size > maxHandoffHeader {
		return "", nil, fmt.Errorf("a handoff header of %d bytes", size)
	}
	if n < 4+size {
		if _, err := io.ReadFull(conn, buf[n:4+size]); err != nil {
			return "", nil, fmt.Errorf("read the handoff's header: %w", err)
		}
	}
	var hdr handoffHeader
	if err := json.Unmarshal(buf[4:4+size], &hdr); err != nil {
		return "", nil, fmt.Errorf("read the handoff's header: %w", err)
	}
	if len(hdr.Names) != len(received) {
		return "", nil, fmt.Errorf("the handoff names %d descriptors and carries %d", len(hdr.Names), len(received))
	}
	files = make(map[string]*os.File, len(received))
	for i, name := range hdr.Names {
		if _, dup := files[name]; dup {
			return "", nil, fmt.Errorf("the handoff names %q twice", name)
		}
		files[name] = received[i]
	}
	return hdr.TaskID, files, nil
}

func parseRights(oob []byte) ([]*os.File, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var out []*os.File
	for _, m := range msgs {
		fds, err := syscall.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			out = append(out, os.NewFile(uintptr(fd), "handed"))
		}
	}
	return out, nil
}
