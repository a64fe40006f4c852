// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// threadID is the calling thread's ID.
func threadID() int { return syscall.Gettid() }

// clockTick is the unit of /proc's CPU times: USER_HZ, 100 on every Linux
// port Go supports.
const clockTick = 10 * time.Millisecond

// threadCPU is the user and system CPU time of thread tid of this process,
// or zero when tid is 0 or the thread is gone.
func threadCPU(tid int) (user, system time.Duration) {
	if tid == 0 {
		return 0, 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	if err != nil {
		return 0, 0
	}
	// The command name, in parentheses, may hold spaces: fields are
	// counted after its closing parenthesis; utime and stime are the 14th
	// and 15th fields, the 12th and 13th after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, 0
	}
	u, _ := strconv.ParseUint(string(f[11]), 10, 64)
	s, _ := strconv.ParseUint(string(f[12]), 10, 64)
	return time.Duration(u) * clockTick, time.Duration(s) * clockTick
}
