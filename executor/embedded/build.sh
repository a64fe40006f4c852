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
# embedded there. Two builds at once in one tree would share bin/: one
# of them may then embed the other's program, which its digest refuses
# (its executors start from the plugin binary).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$1
ldflags=${2:-}
pkg=github.com/nomad-driver-wasm/nomad-driver-wasm/executor/embedded
bin=executor/embedded/bin/wasm-executor
# A failed build leaves no program behind for plain go builds to embed.
trap 'rm -f "$bin"' EXIT
rm -f "$bin"
sha256() {
	if command -v sha256sum >/dev/null; then sha256sum "$1"; else shasum -a 256 "$1"; fi | cut -d' ' -f1
}
if [ "$(go env GOOS)" = linux ]; then
	# Without the symbol table and DWARF (stack traces keep their names).
	CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags -s -w" -o "$bin" ./executor/cmd/wasm-executor
	ldflags="$ldflags -X $pkg.Digest=$(sha256 "$bin")"
fi
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out" .
