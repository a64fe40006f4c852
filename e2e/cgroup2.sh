#!/usr/bin/env bash
# Copyright (c) nomad-driver-wasm contributors
# SPDX-License-Identifier: MPL-2.0
#
# The driver's cgroup tests on cgroup v2, in a virtual machine: this
# machine (and CI's) mounts cgroup v1, whose cpu, memory and cpuset
# controllers a cgroup2 mount cannot have beside it. The machine is qemu
# (software emulation: nested KVM is not dependable here) booting Debian's
# cloud kernel into an initramfs with the unified hierarchy mounted at
# /sys/fs/cgroup, holding busybox, the test modules and:
#   - the driver's test binary (which is also its executor), running the
#     cgroup tests make test runs on v1; WASM_TEST_CGROUP=v2 makes them
#     fail if the machine is not v2;
#   - Nomad (.tools/agents/nomad), the plugin (bin/) and the test of
#     e2e/cgroup2vm, which runs a Nomad agent with the plugin and checks
#     the cgroups Nomad's client makes for the tasks and the driver fills.
# Prints the machine's console; exits with the tests' status.
#
# Needs (make test-cgroup2 provides them): qemu-system-x86 and
# busybox-static (make deps-vm), Nomad (make tools), the plugin (make
# build). The kernel package is downloaded into .tools/vm once.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
vm=$root/.tools/vm
run=${CGROUP2_TESTS:-'^TestCgroup'}

for tool in qemu-system-x86_64 busybox apt-get dpkg-deb; do
	command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (make deps-vm)" >&2; exit 1; }
done
for file in .tools/agents/nomad bin/nomad-driver-wasm; do
	[ -x "$file" ] || { echo "FAIL: $file is missing (make tools build)" >&2; exit 1; }
done

# Debian's cloud kernel: built-in serial console, initramfs, tmpfs and
# cgroup v2 with the cpu, memory and cpuset controllers; no modules needed.
mkdir -p "$vm"
kernel=$(ls "$vm"/kernel/boot/vmlinuz-* 2>/dev/null | head -1 || true)
if [ -z "$kernel" ]; then
	kernelpkg() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}'; }
	pkg=$(kernelpkg)
	rm -rf "$vm/dl" && mkdir -p "$vm/dl"
	# Debian drops an old kernel's package from its mirrors once a newer one
	# is out: with stale package lists, update them and ask again.
	if [ -z "$pkg" ] || ! (cd "$vm/dl" && apt-get download -qq "$pkg"); then
		apt-get update -qq
		pkg=$(kernelpkg)
		[ -n "$pkg" ] || { echo "FAIL: no linux-image-cloud-amd64 in the apt sources (a Debian machine is needed)" >&2; exit 1; }
		(cd "$vm/dl" && apt-get download -qq "$pkg")
	fi
	echo "downloaded the kernel: $pkg"
	dpkg-deb -x "$vm"/dl/*.deb "$vm/kernel"
	rm -rf "$vm/dl"
	kernel=$(ls "$vm"/kernel/boot/vmlinuz-* | head -1)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rd=$work/rd
mkdir -p "$rd"/{bin,etc,proc,sys,dev,tmp,root,modules,plugins}
chmod 1777 "$rd/tmp"
cp "$(command -v busybox)" "$rd/bin/busybox"
cp .tools/agents/nomad "$rd/nomad"
# Nomad is built with cgo: its loader and C libraries, where they are.
for lib in $(ldd .tools/agents/nomad | grep -o '/[^ ]*'); do
	mkdir -p "$rd$(dirname "$lib")" && cp -L "$lib" "$rd$lib"
done
cp bin/nomad-driver-wasm "$rd/plugins/"
echo "building the test binaries and the test modules"
CGO_ENABLED=0 go test -c -o "$rd/driver.test" ./driver/
CGO_ENABLED=0 go test -c -o "$rd/cgroups.test" ./driver/cgroups/
CGO_ENABLED=0 go test -c -o "$rd/host.test" ./executor/host/
CGO_ENABLED=0 go test -c -tags cgroup2vm -o "$rd/nomad.test" ./e2e/cgroup2vm/
if ! WASM_TESTMODULE_EXPORT="$rd/modules" go test -count=1 -run '^TestExport$' ./executor/testmodule/ >"$work/export.log" 2>&1; then
	cat "$work/export.log" >&2
	echo "FAIL: the test modules did not build" >&2
	exit 1
fi
chmod 755 "$rd/modules" && chmod 644 "$rd"/modules/*
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$rd/etc/passwd"
printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$rd/etc/group"
printf '%s\n' '127.0.0.1 localhost cgroup2-vm' >"$rd/etc/hosts"
cat >"$rd/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
hostname cgroup2-vm
echo "cgroup2-vm: \$(uname -r), cgroup controllers: \$(cat /sys/fs/cgroup/cgroup.controllers), \$(nproc) cpus"
cd /
# The tests write to files, printed once they are done: the emulated serial
# console is slow, and a test's output must not wait on it.
CI=${CI:-} WASM_TEST_CGROUP=v2 WASM_TESTMODULE_DIR=/modules /driver.test -test.v -test.count=${CGROUP2_COUNT:-1} -test.timeout=${CGROUP2_TIMEOUT:-5m} -test.run '$run' >/tmp/driver.out 2>&1
status=\$?
cat /tmp/driver.out
CI=${CI:-} WASM_TEST_CGROUP=v2 /cgroups.test -test.v -test.count=${CGROUP2_COUNT:-1} -test.timeout=${CGROUP2_TIMEOUT:-5m} >/tmp/cgroups.out 2>&1 || status=\$?
cat /tmp/cgroups.out
# The executor's join, as it is built (no cgo): the process moves on v2.
CI=${CI:-} WASM_TEST_CGROUP=v2 /host.test -test.v -test.count=1 -test.timeout=2m -test.run 'Cgroup' >/tmp/host.out 2>&1 || status=\$?
cat /tmp/host.out
/nomad.test -test.v -test.count=1 -test.timeout=10m >/tmp/nomad.out 2>&1 || status=\$?
cat /tmp/nomad.out
echo "cgroup2-vm: exit \$status"
poweroff -f
EOF
chmod +x "$rd/init"
(cd "$rd" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initrd.gz"

echo "booting $(basename "$kernel") under qemu (software emulation)"
timeout 15m qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 4096 -nographic -no-reboot \
	-kernel "$kernel" -initrd "$work/initrd.gz" \
	-append "console=ttyS0 quiet panic=-1" </dev/null | tee "$work/console.log" | tr -d '\r' || true
console=$(tr -d '\r' <"$work/console.log")
status=$(sed -n 's/^cgroup2-vm: exit \([0-9]*\)$/\1/p' <<<"$console" | tail -1)
if [ -z "$status" ]; then
	echo "FAIL: the virtual machine ended (or timed out) without the tests' status" >&2
	exit 1
fi
if grep -q 'no tests to run' <<<"$console"; then
	echo "FAIL: a test binary in the virtual machine ran no test (CGROUP2_TESTS=$run)" >&2
	exit 1
fi
exit "$status"
