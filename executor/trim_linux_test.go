// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/shoenig/test/must"
)

// binaryRSS sums the resident kB of this process's mappings of its own
// executable.
func binaryRSS(t *testing.T) int {
	t.Helper()
	exe, err := os.Executable()
	must.NoError(t, err)
	f, err := os.Open("/proc/self/smaps")
	must.NoError(t, err)
	defer f.Close()
	total, inExe := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":"):
			inExe = len(fields) == 6 && fields[5] == exe && !strings.Contains(fields[1], "w")
		case inExe && len(fields) == 3 && fields[0] == "Rss:":
			kb, err := strconv.Atoi(fields[1])
			must.NoError(t, err)
			total += kb
		}
	}
	return total
}

func TestTrimBinaryPages(t *testing.T) {
	before := binaryRSS(t)
	trimBinaryPages()
	after := binaryRSS(t)
	t.Logf("read-only pages of the test binary mapped: %d kB before, %d kB after", before, after)
	must.Less(t, before/2, after)
}
