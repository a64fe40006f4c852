#!/usr/bin/env bash
# Copyright (c) nomad-driver-wasm contributors
# SPDX-License-Identifier: MPL-2.0
#
# build.sh OUT [LDFLAGS]: builds the plugin binary into OUT for GOOS/GOARCH
# (from the environment, default the host's), with the executor program
# embedded: executor/cmd/wasm-executor is built first into
# executor/embedded/bin/, and the plugin is linked with embedded.Digest set
# to its sha256, which is what makes the plugin launch its executors from
# it. On a system other than Linux the plugin launches executors from
# itself (the embedded program is run from a sealed memfd), so nothing is
# embedded there.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1
ldflags=${2:-}
pkg=github.com/nomad-driver-wasm/nomad-driver-wasm/executor/embedded
bin=executor/embedded/bin/wasm-executor
rm -f "$bin"
if [ "$(go env GOOS)" = linux ]; then
	# Without the symbol table and DWARF (stack traces keep their names).
	CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags -s -w" -o "$bin" ./executor/cmd/wasm-executor
	ldflags="$ldflags -X $pkg.Digest=$(sha256sum "$bin" | cut -d' ' -f1)"
fi
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out" .
rm -f "$bin"
