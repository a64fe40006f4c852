#!/usr/bin/env bash
# Copyright (c) nomad-driver-wasm contributors
# SPDX-License-Identifier: MPL-2.0
#
# make demo: a Consul agent and a Nomad agent (server and client) on
# loopback with the plugin loaded, the example jobs run, and what a
# newcomer wants to see printed. State lives in .demo/ (gitignored); the
# agents keep running until make demo-stop.
#   e2e/demo.sh start | stop
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=$ROOT/.demo
AGENTS=$ROOT/.tools/agents
NOMAD_ADDR=http://127.0.0.1:4646
# The version e2e/agents.sh puts in $AGENTS, and the PATH the demo was
# started with, where an official release of it may be.
NOMAD_VERSION=$(sed -n 's/^NOMAD_VERSION=//p' e2e/agents.sh)
USER_PATH=$PATH
export NOMAD_ADDR PATH="$AGENTS:/usr/local/go/bin:$PATH" NOMAD_CLI_SHOW_HINTS=0

# is_ours PID WORD: the process is alive and its command line has WORD (a
# pid file can outlive its process, and the pid be reused).
is_ours() {
	tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q -- "$2"
}

stop() {
	local name
	for name in nomad consul files; do
		local pidfile=$DEMO/$name.pid word=$name
		[ -f "$pidfile" ] || continue
		[ "$name" = files ] && word=http.server
		local pid
		pid=$(cat "$pidfile")
		if is_ours "$pid" "$word"; then
			kill -INT "$pid" 2>/dev/null || true
			for _ in $(seq 100); do is_ours "$pid" "$word" || break; sleep 0.1; done
			kill -KILL "$pid" 2>/dev/null || true
		fi
		rm -f "$pidfile"
	done
	# Executors, logmon and docker_logger run in sessions of their own and
	# outlive the agent: end the demo's executors and every process holding
	# a file in the demo client's data dir (its allocations).
	local p
	for p in /proc/[0-9]*; do
		if [ "$(readlink "$p/exe" 2>/dev/null)" = "$DEMO/plugins/nomad-driver-wasm" ] ||
			ls -l "$p/fd" 2>/dev/null | grep -q -- "-> $DEMO/nomad/"; then
			kill -KILL "${p#/proc/}" 2>/dev/null || true
		fi
	done
	# Containers of the demo's Docker tasks: their alloc dirs are mounted
	# from the demo's data dir.
	if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
		local c
		for c in $(docker ps -aq --filter label=com.hashicorp.nomad.alloc_id); do
			if docker inspect --format '{{range .Mounts}}{{.Source}} {{end}}' "$c" 2>/dev/null | grep -q -- "$DEMO/nomad/"; then
				docker rm -f "$c" >/dev/null 2>&1 || true
			fi
		done
	fi
	# The tasks' cgroups (Nomad's, and the driver's where Nomad made none):
	# with the agent stopped and the executors killed, nobody else removes
	# them. Killed processes leave their cgroups as they exit.
	local a d
	for a in "$DEMO"/nomad/alloc/*-*-*-*-*; do
		[ -d "$a" ] || continue
		a=${a##*/}
		for d in /sys/fs/cgroup/*/nomad/"$a".* /sys/fs/cgroup/*/nomad-driver-wasm/"$a".* /sys/fs/cgroup/cpuset/nomad/reserve/"$a".* \
			/sys/fs/cgroup/nomad.slice/*.slice/"$a".* /sys/fs/cgroup/nomad-driver-wasm/"$a".*; do
			[ -d "$d" ] || continue
			for _ in $(seq 50); do rmdir "$d" 2>/dev/null && break; sleep 0.1; done
		done
	done
	# The client mounts secrets/ of each task; unmount before the next start.
	local m
	for m in $(awk -v d="$DEMO/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
}

# has_version BINARY VERSION: BINARY reports vVERSION (as in e2e/agents.sh).
has_version() {
	[ -x "$1" ] || return 1
	local out
	out=$("$1" version 2>/dev/null) || return 1
	[[ ${out%%$'\n'*} =~ v"$2"([^0-9.]|$) ]]
}

# pick_nomad links the Nomad the demo runs as $DEMO/bin/nomad, first on
# PATH: a nomad of the pinned version found on the caller's PATH (an
# official release build has the web UI), else the one in $AGENTS (built
# from the Go module proxy, without it).
pick_nomad() {
	local dirs dir nomad=$AGENTS/nomad
	IFS=: read -ra dirs <<<"$USER_PATH"
	for dir in "${dirs[@]}"; do
		[[ $dir == /* && $dir != "$AGENTS" && $dir != "$DEMO/bin" ]] || continue
		if has_version "$dir/nomad" "$NOMAD_VERSION"; then
			nomad=$dir/nomad
			break
		fi
	done
	mkdir -p "$DEMO/bin"
	ln -sfn "$nomad" "$DEMO/bin/nomad"
	PATH=$DEMO/bin:$PATH
}

wait_for() { # description command...
	local what=$1; shift
	for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
	echo "timed out waiting for $what; see $DEMO/*.log" >&2
	exit 1
}

start() {
	stop
	# Each demo starts from a fresh cluster state (the compiled-module cache
	# is kept), so that the jobs run again and their output is new.
	# Nomad makes its data_dir ($DEMO/nomad) itself, 0700, as on a real
	# client.
	rm -rf "$DEMO/nomad"
	mkdir -p "$DEMO/plugins" "$DEMO/cache"
	pick_nomad
	cp bin/nomad-driver-wasm "$DEMO/plugins/"
	cat > "$DEMO/nomad.hcl" <<HCL
data_dir  = "$DEMO/nomad"
bind_addr = "127.0.0.1"
advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}
server {
  enabled          = true
  bootstrap_expect = 1
}
client {
  enabled = true
  # Loopback only: the node's address, and so the tasks' ports and the
  # services registered for them, is 127.0.0.1, never the machine's own.
  network_interface = "lo"
  options {
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }
}
consul {
  address = "127.0.0.1:8500"
}
telemetry {
  publish_allocation_metrics = true
}
plugin_dir = "$DEMO/plugins"
plugin "nomad-driver-wasm" {
  config {
    cache_dir = "$DEMO/cache"
    # Tasks may connect to loopback only (the outbound example's counter);
    # each task's own outbound rules say where within it.
    outbound {
      allow = ["tcp://127.0.0.0/8:*"]
    }
  }
}
plugin "raw_exec" {
  config {
    enabled = true
  }
}
HCL
	(cd example-jobs/build && exec python3 -m http.server 8700 --bind 127.0.0.1 >"$DEMO/files.log" 2>&1) &
	echo $! > "$DEMO/files.pid"
	consul agent -dev -bind 127.0.0.1 -client 127.0.0.1 >"$DEMO/consul.log" 2>&1 &
	echo $! > "$DEMO/consul.pid"
	nomad agent -config "$DEMO/nomad.hcl" >"$DEMO/nomad.log" 2>&1 &
	echo $! > "$DEMO/nomad.pid"

	# The client cannot register before the server has elected itself and
	# created the cluster's first root key (it is refused: "keyring has not
	# been initialized yet"), so wait for that first: a server that never
	# gets there is reported as such, not as a missing wasm driver a minute
	# later. StartCluster in e2e/cluster_test.go waits the same way
	# (Keyring().List, state "active"). Nomad v1.11 has no -json for this
	# command (the HTTP API is /v1/operator/keyring/keys); the table's second
	# column is the key's state.
	wait_for "an active root key in the Nomad keyring (nomad operator root keyring list)" \
		sh -c "nomad operator root keyring list 2>/dev/null | awk '\$2 == \"active\" {found = 1} END {exit !found}'"
	wait_for "the Nomad client's wasm driver" sh -c "nomad node status -self -verbose 2>/dev/null | grep -q 'driver.wasm.engine'"
	local sum
	sum=$(awk '$2 == "hello.wasm" {print $1}' example-jobs/build/SHA256SUMS)
	nomad job run -detach -var "hello_sha256=$sum" example-jobs/hello.nomad.hcl >/dev/null
	nomad job run -detach example-jobs/env-and-files.nomad.hcl >/dev/null
	nomad job run -detach example-jobs/constraint.nomad.hcl >/dev/null
	nomad job run -detach example-jobs/dispatch.nomad.hcl >/dev/null
	nomad job run -detach example-jobs/periodic.nomad.hcl >/dev/null
	nomad job run -detach example-jobs/http.nomad.hcl >/dev/null
	local dispatched
	dispatched=$(echo "a payload handed to nomad job dispatch" | nomad job dispatch -detach dispatch - |
		awk '/Dispatched Job ID/ {print $NF}')
	local docker=yes
	docker info >/dev/null 2>&1 || docker=no
	if [ $docker = yes ]; then
		nomad job run -detach example-jobs/mixed.nomad.hcl >/dev/null
		nomad job run -detach example-jobs/outbound.nomad.hcl >/dev/null
	fi
	wait_for "the hello job" sh -c "nomad job status hello | grep -q ' complete '"
	wait_for "the dispatched job" sh -c "nomad job status '$dispatched' | grep -q ' complete '"

	echo
	echo "== The wasm driver's fingerprint (nomad node status -self -verbose)"
	nomad node status -self -verbose | grep -E '^driver\.wasm' || true
	echo
	echo "== Output of the hello batch job (nomad alloc logs -job hello)"
	nomad alloc logs -job hello
	echo
	echo "== The dispatch payload, upper-cased by a wasm task (nomad alloc logs -job $dispatched)"
	nomad alloc logs -job "$dispatched"
	if [ $docker = yes ]; then
		wait_for "the mixed job" sh -c "nomad job status mixed | grep -q ' complete '"
		echo
		echo "== A Docker task's output transformed by a wasm task in the same group (nomad alloc logs -job mixed transform)"
		nomad alloc logs -job mixed transform
	else
		echo
		echo "(no Docker engine answers: the mixed Docker + wasm example was not run)"
	fi
	wait_for "the greet service, passing its checks in Consul" \
		sh -c "curl -sf 'http://127.0.0.1:8500/v1/health/service/greet?passing=1' | grep -q '\"ServiceID\"'"
	local greet
	greet=$(curl -sf 'http://127.0.0.1:8500/v1/health/service/greet?passing=1' |
		python3 -c 'import json, sys; s = json.load(sys.stdin)[0]["Service"]; print("%s:%d" % (s["Address"], s["Port"]))')
	# The demo sends nothing off loopback: with network_interface = "lo"
	# the service is on 127.0.0.1.
	if [[ $greet != 127.0.0.1:* ]]; then
		echo "Consul has greet at $greet, not on 127.0.0.1: the Nomad client's network_interface should be lo ($DEMO/nomad.hcl)" >&2
		exit 1
	fi
	echo
	echo "== An HTTP request to the wasm service Consul knows as greet, one fresh instance per request (curl http://$greet/demo)"
	curl -s "http://$greet/demo"
	if [ $docker = yes ]; then
		wait_for "the outbound-visits service, passing its checks in Consul" \
			sh -c "curl -sf 'http://127.0.0.1:8500/v1/health/service/outbound-visits?passing=1' | grep -q '\"ServiceID\"'"
		local visits
		visits=$(curl -sf 'http://127.0.0.1:8500/v1/health/service/outbound-visits?passing=1' |
			python3 -c 'import json, sys; s = json.load(sys.stdin)[0]["Service"]; print("%s:%d" % (s["Address"], s["Port"]))')
		# Until its template has the counter's address from Consul (the
		# task then restarts with it), the handler says so.
		wait_for "the visits handler to reach its counter" sh -c "curl -sf 'http://$visits/' | grep -q 'says: count'"
		echo
		echo "== A wasm HTTP handler that calls the job's counter (a Docker task) on every request (curl http://$visits/ twice)"
		curl -s "http://$visits/"
		curl -s "http://$visits/"
	fi
	echo
	echo "== Jobs"
	nomad job status
	echo
	# A Nomad built without the UI (as from the Go module proxy) answers
	# /ui/ with a page saying so, status 200.
	local ui
	ui=$(curl -sf "$NOMAD_ADDR/ui/" 2>/dev/null || true)
	if [ -n "$ui" ] && ! grep -qE 'Nomad UI is (not available|disabled)' <<<"$ui"; then
		echo "Nomad UI:  $NOMAD_ADDR/ui    Consul UI: http://127.0.0.1:8500/ui"
	else
		echo "Nomad UI:  not in this binary ($(readlink -f "$DEMO/bin/nomad")); for one, put an official Nomad v$NOMAD_VERSION release binary (https://releases.hashicorp.com/nomad/$NOMAD_VERSION/) on PATH and run make demo again"
		echo "Consul UI: http://127.0.0.1:8500/ui"
	fi
	echo "Try:       export NOMAD_ADDR=$NOMAD_ADDR PATH=$DEMO/bin:\$PATH"
	echo "           echo hello | nomad job dispatch dispatch -"
	echo "Stop with: make demo-stop"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
