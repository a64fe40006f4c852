// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"os"
	"strings"
	"testing"

	"github.com/shoenig/test/must"
)

// binaryPages sums, over this process's read-only mappings of its own
// executable, the resident kB and the anonymous (copied-on-write) kB.
func binaryPages(t *testing.T) (rss, anonymous int) {
	t.Helper()
	exe, err := os.Executable()
	must.NoError(t, err)
	f, err := os.Open("/proc/self/smaps")
	must.NoError(t, err)
	defer f.Close()
	mappings, err := readSmaps(f)
	must.NoError(t, err)
	for _, m := range mappings {
		if m.path == exe && !strings.Contains(m.perms, "w") {
			rss += m.rssKB
			anonymous += m.anonymousKB
		}
	}
	return rss, anonymous
}

func TestTrimBinaryPages(t *testing.T) {
	before, anonBefore := binaryPages(t)
	trimBinaryPages()
	after, anonAfter := binaryPages(t)
	t.Logf("read-only pages of the test binary mapped: %d kB before, %d kB after (%d kB anonymous)", before, after, anonBefore)
	must.Less(t, before/2, after)
	// Modified read-only pages (relocations in RELRO under -race, which
	// links dynamically) are kept: dropping them would lose their contents.
	must.Eq(t, anonBefore, anonAfter)
}

func TestDroppableMappings(t *testing.T) {
	t.Parallel()
	const exe = "/opt/nomad/plugins/nomad-driver-wasm"
	smaps := `00400000-00c00000 r-xp 00000000 fd:01 42 ` + exe + `
Size:               8192 kB
Rss:                6000 kB
Anonymous:             0 kB
00c00000-00d00000 r--p 00800000 fd:01 42 ` + exe + `
Rss:                 900 kB
Anonymous:             0 kB
00d00000-00d10000 r--p 00900000 fd:01 42 ` + exe + `
Rss:                  64 kB
Anonymous:            64 kB
00d10000-00d20000 rw-p 00910000 fd:01 42 ` + exe + `
Rss:                  64 kB
Anonymous:            12 kB
7f0000000000-7f0000100000 r-xp 00000000 fd:01 7 /usr/lib/libc.so.6
Anonymous:             0 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
Anonymous:           132 kB
`
	all, err := readSmaps(strings.NewReader(smaps))
	must.NoError(t, err)
	must.Len(t, 6, all)
	must.Eq(t, 6000, all[0].rssKB)
	must.Eq(t, 64, all[2].anonymousKB)
	got := droppableMappings(all, exe)
	must.Len(t, 2, got)
	must.Eq(t, 0x00400000, got[0].start)
	must.Eq(t, 0x00c00000, got[0].end)
	must.Eq(t, 0x00c00000, got[1].start)
}
