// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !unix

package confinedfs

import (
	"os"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// platformOpenFlags has nothing to add here: O_DIRECTORY is checked after
// the open, and O_NONBLOCK has no meaning for the files a mount holds.
func platformOpenFlags(experimentalsys.Oflag) int {
	return 0
}

// setNonblockFlag only lets IsNonblock report the guest's choice; regular
// files and directories ignore non-blocking mode on every platform.
func setNonblockFlag(*os.File, bool) error {
	return nil
}
