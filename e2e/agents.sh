#!/usr/bin/env bash
# Copyright (c) nomad-driver-wasm contributors
# SPDX-License-Identifier: MPL-2.0
#
# Puts the Nomad and Consul agents the e2e tests and the demo run into
# .tools/agents (gitignored): a binary already there or on PATH is reused
# when its version matches, otherwise it is built from the Go module proxy
# (neither agent is packaged for Debian; each build takes minutes).
# Idempotent, and silent when there is nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."

NOMAD_VERSION=1.11.3
CONSUL_VERSION=1.22.2
# A nomad/api pseudo-version that builds with Nomad v1.11.3: Nomad's go.mod
# replaces nomad/api with ./api, which its module zip does not contain.
NOMAD_API_VERSION=v0.0.0-20260907080526-08ef8f3d26da
DEST="$PWD/.tools/agents"
export PATH="/usr/local/go/bin:$PATH"

has_version() { # binary version
	[ -x "$1" ] || return 1
	local out
	# Read the whole output first: under pipefail, "version | head -1" could
	# kill the agent with SIGPIPE and fail the check, forcing a rebuild.
	out=$("$1" version 2>/dev/null) || return 1
	[[ ${out%%$'\n'*} =~ v"$2"([^0-9.]|$) ]]
}

ensure() { # name version build-function
	local name=$1 version=$2 build=$3
	has_version "$DEST/$name" "$version" && return 0
	local found
	found=$(command -v "$name" || true)
	if [ -n "$found" ] && has_version "$found" "$version"; then
		mkdir -p "$DEST" && ln -sf "$found" "$DEST/$name"
		return 0
	fi
	echo "building $name v$version from the Go module proxy (several minutes)..." >&2
	local work
	work=$(mktemp -d)
	trap 'rm -rf "$work"' RETURN
	"$build" "$work"
	mkdir -p "$DEST"
	mv "$work/$name" "$DEST/$name"
	has_version "$DEST/$name" "$version" || { echo "built $name does not report v$version" >&2; exit 1; }
}

build_nomad() {
	local work=$1
	cd "$work"
	cat > go.mod <<MOD
module agents

go 1.25

require (
	github.com/hashicorp/nomad v$NOMAD_VERSION
	github.com/hashicorp/nomad/api $NOMAD_API_VERSION
)

replace (
	github.com/Microsoft/go-winio => github.com/endocrimes/go-winio v0.4.13-0.20190628114223-fb47a8b41948
	github.com/hashicorp/hcl => github.com/hashicorp/hcl v1.0.1-nomad-1
)
MOD
	printf 'package agents\n\nimport _ "github.com/hashicorp/nomad"\n' > tools.go
	go get "github.com/hashicorp/nomad@v$NOMAD_VERSION" "github.com/hashicorp/nomad/api@$NOMAD_API_VERSION" >get.log 2>&1 || { cat get.log >&2; return 1; }
	CGO_ENABLED=1 go build -o nomad github.com/hashicorp/nomad
	cd - >/dev/null
}

build_consul() {
	local work=$1
	cd "$work"
	cat > go.mod <<MOD
module agents

go 1.25

require github.com/hashicorp/consul v$CONSUL_VERSION

exclude (
	github.com/hashicorp/go-msgpack v1.1.5
	github.com/hashicorp/go-msgpack v1.1.6
)
MOD
	printf 'package agents\n\nimport _ "github.com/hashicorp/consul"\n' > tools.go
	GONOSUMDB=github.com/hashicorp/consul go get "github.com/hashicorp/consul@v$CONSUL_VERSION" >get.log 2>&1 || { cat get.log >&2; return 1; }
	GONOSUMDB=github.com/hashicorp/consul CGO_ENABLED=0 go build -o consul github.com/hashicorp/consul
	cd - >/dev/null
}

ensure nomad "$NOMAD_VERSION" build_nomad
ensure consul "$CONSUL_VERSION" build_consul
