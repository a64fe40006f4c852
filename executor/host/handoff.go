// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

// handoffTTL is how long descriptors handed over for a task wait for its
// Start; a driver that handed them over and never started the task (it
// died in between) leaves them to be closed then.
const handoffTTL = time.Minute

// handoffs holds what drivers handed over (executor.SendHandoff) for the
// tasks they are about to start in this shared executor, by task ID, until
// each task's Start takes it.
type handoffs struct {
	mu     sync.Mutex
	byTask map[string]handed
}

type handed struct {
	files map[string]*os.File
	at    time.Time
}

// put keeps files for task id, replacing (and closing) what an earlier
// handoff for it left, and closes what has waited longer than handoffTTL.
func (h *handoffs) put(id string, files map[string]*os.File) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byTask == nil {
		h.byTask = map[string]handed{}
	}
	now := time.Now()
	for task, e := range h.byTask {
		if task == id || now.Sub(e.at) > handoffTTL {
			closeAll(e.files)
			delete(h.byTask, task)
		}
	}
	h.byTask[id] = handed{files: files, at: now}
}

// take returns what was handed over for task id; it is the caller's.
func (h *handoffs) take(id string) (map[string]*os.File, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.byTask[id]
	if !ok {
		return nil, executor.NodeErrorf("the driver handed over no descriptors for task %s before its start: the shared executor (running as its user) can reach nothing of the task without them; the driver and the shared executor may be of different versions (stop the shared executor's tasks, or restart the client, to start a new one)", id)
	}
	delete(h.byTask, id)
	return e.files, nil
}

// closeAll closes what was handed over and never taken.
func (h *handoffs) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, e := range h.byTask {
		closeAll(e.files)
		delete(h.byTask, id)
	}
}

func closeAll(files map[string]*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

// listenHandoff makes the shared executor take handoffs on the socket at
// path (executor.HandoffSocket), from root or from its own user only. It
// is called while the executor can still create the socket (before it
// becomes its user); a stale socket of a process before it is replaced.
func (s *server) listenHandoff(path string) error {
	_ = os.Remove(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return err
	}
	// The executor may not be able to remove it once it is its user; the
	// driver removes sockets whose executor is gone.
	ln.SetUnlinkOnClose(true)
	s.closers = append(s.closers, func() {
		_ = ln.Close()
		s.handoff.closeAll()
	})
	s.wg.Go(func() {
		for {
			conn, err := ln.AcceptUnix()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					s.logger.Error("the handoff socket failed: tasks can no longer start in this shared executor", "error", err)
				}
				return
			}
			s.wg.Go(func() { s.receiveHandoff(conn) })
		}
	})
	return nil
}

// receiveHandoff takes one handoff and answers it.
func (s *server) receiveHandoff(conn *net.UnixConn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	logger := s.logger.With("handoff", conn.LocalAddr().String())
	if err := peerMayHandOver(conn); err != nil {
		logger.Warn("refused a handoff", "error", err)
		_, _ = conn.Write([]byte(err.Error()))
		return
	}
	id, files, err := executor.ReceiveHandoff(conn)
	if err != nil {
		logger.Warn("a handoff failed", "error", err)
		_, _ = conn.Write([]byte(err.Error()))
		return
	}
	s.handoff.put(id, files)
	if logger.IsDebug() {
		logger.Debug("descriptors handed over", "task_id", id, "count", len(files))
	}
	_, _ = conn.Write([]byte{0})
}
