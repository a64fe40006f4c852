// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ProcessGone reports whether process pid has exited. A zombie (exited, not
// yet reaped by its parent) counts as gone: an executor orphaned by a driver
// that died is reaped by whatever adopted it, if anything ever does.
func ProcessGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		// No procfs (macOS): the signal check above is all there is.
		return false
	}
	// The state follows the command name, which is in parentheses and may
	// itself contain them.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		state := b[i+2]
		return state == 'Z' || state == 'X'
	}
	return false
}
