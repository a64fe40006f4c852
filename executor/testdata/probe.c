// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// probe is the test guest: argv[1] names what it does, so one small module
// exercises every part of the guest's view. Build:
//   clang-14 --target=wasm32-wasi -O2 -Wl,--strip-all probe.c -o probe.wasm
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int cat(const char *path) {
	FILE *f = fopen(path, "r");
	if (!f) {
		printf("open %s: %s\n", path, strerror(errno));
		return 1;
	}
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
	fclose(f);
	return 0;
}

// try reports whether opening path for reading succeeded, as the tests read it.
static void try_open(const char *label, const char *path) {
	int fd = open(path, O_RDONLY);
	if (fd >= 0) {
		char buf[64] = {0};
		ssize_t n = read(fd, buf, sizeof buf - 1);
		printf("%s: OPENED (%zd bytes: %.20s)\n", label, n, buf);
		close(fd);
	} else {
		printf("%s: denied (%s)\n", label, strerror(errno));
	}
}

static void try_create(const char *label, const char *path) {
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		printf("%s: CREATED\n", label);
		close(fd);
	} else {
		printf("%s: denied (%s)\n", label, strerror(errno));
	}
}

int main(int argc, char **argv) {
	const char *cmd = argc > 1 ? argv[1] : "hello";
	if (!strcmp(cmd, "hello")) {
		printf("hello from wasm\n");
		fprintf(stderr, "a line on stderr\n");
		return 0;
	}
	if (!strcmp(cmd, "args")) {
		for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
		return 0;
	}
	if (!strcmp(cmd, "env")) {
		for (char **e = environ; *e; e++) printf("%s\n", *e);
		return 0;
	}
	if (!strcmp(cmd, "exit")) return argc > 2 ? atoi(argv[2]) : 0;
	if (!strcmp(cmd, "trap")) {
		printf("about to trap\n");
		fflush(stdout);
		__builtin_trap();
	}
	if (!strcmp(cmd, "spin")) {
		printf("spinning\n");
		fflush(stdout);
		volatile uint64_t x = 0;
		for (;;) x++;
	}
	if (!strcmp(cmd, "spin-when") && argc > 2) {
		// Waits for the file argv[2] to exist, then spins as spin does:
		// tasks started one after the other spin from the same moment.
		printf("waiting\n");
		fflush(stdout);
		struct stat st;
		struct timespec tick = {0, 10 * 1000 * 1000};
		while (stat(argv[2], &st) != 0) nanosleep(&tick, NULL);
		printf("spinning\n");
		fflush(stdout);
		volatile uint64_t x = 0;
		for (;;) x++;
	}
	if (!strcmp(cmd, "flood")) {
		// Prints numbered lines as fast as it can, forever.
		for (unsigned long i = 0;; i++) printf("flood line %lu: the quick brown fox jumps over the lazy dog\n", i);
	}
	if (!strcmp(cmd, "hostloop")) {
		// Calls the host (clock_time_get) in a loop, forever.
		printf("looping\n");
		fflush(stdout);
		struct timespec ts;
		for (;;) clock_gettime(CLOCK_MONOTONIC, &ts);
	}
	if (!strcmp(cmd, "sleep")) {
		printf("sleeping\n");
		fflush(stdout);
		sleep(argc > 2 ? atoi(argv[2]) : 3600);
		printf("slept\n");
		return 0;
	}
	if (!strcmp(cmd, "ticker")) {
		// Prints a numbered line every 50 ms, forever.
		for (int i = 0;; i++) {
			printf("tick %d\n", i);
			fflush(stdout);
			usleep(50000);
		}
	}
	if (!strcmp(cmd, "clock")) {
		struct timespec m0, m1;
		clock_gettime(CLOCK_MONOTONIC, &m0);
		usleep(20000);
		clock_gettime(CLOCK_MONOTONIC, &m1);
		long long slept = (m1.tv_sec - m0.tv_sec) * 1000000000LL + (m1.tv_nsec - m0.tv_nsec);
		printf("realtime=%lld\nslept_ns=%lld\n", (long long)time(NULL), slept);
		return 0;
	}
	if (!strcmp(cmd, "random")) {
		unsigned char b[16];
		for (int k = 0; k < 2; k++) {
			if (getentropy(b, sizeof b) != 0) return 2;
			for (int i = 0; i < 16; i++) printf("%02x", b[i]);
			printf("\n");
		}
		return 0;
	}
	if (!strcmp(cmd, "stdin")) {
		char buf[256];
		ssize_t n = read(0, buf, sizeof buf);
		printf("stdin read=%zd\n", n);
		return 0;
	}
	if (!strcmp(cmd, "cat") && argc > 2) return cat(argv[2]);
	if (!strcmp(cmd, "write") && argc > 3) {
		FILE *f = fopen(argv[2], "w");
		if (!f) {
			printf("write %s: %s\n", argv[2], strerror(errno));
			return 1;
		}
		fputs(argv[3], f);
		fclose(f);
		printf("wrote %s\n", argv[2]);
		return 0;
	}
	if (!strcmp(cmd, "escape")) {
		// Every route out of the mounts; the test plants local/abs-link,
		// local/rel-link and local/dir-link pointing outside.
		try_open("dotdot", "/local/../../../../etc/hostname");
		try_open("relative-dotdot", "../etc/hostname");
		try_open("host-absolute", "/etc/hostname");
		try_open("found-absolute-symlink", "/local/abs-link");
		try_open("found-relative-symlink", "/local/rel-link");
		try_open("found-dir-symlink", "/local/dir-link/secret.txt");
		int r1 = symlink("/etc/hostname", "/local/made-abs");
		int r2 = symlink("../../../../../../etc/hostname", "/local/made-rel");
		printf("symlink-created: %d %d\n", r1, r2);
		try_open("made-absolute-symlink", "/local/made-abs");
		try_open("made-relative-symlink", "/local/made-rel");
		try_create("create-through-symlink-dir", "/local/dir-link/planted.txt");
		try_create("create-dotdot", "/local/../../planted.txt");
		printf("rename-out: %s\n", rename("/local/inside.txt", "/local/../../moved.txt") == 0 ? "MOVED" : "denied");
		try_open("inner-symlink", "/local/inner-link");
		try_create("secrets-readonly", "/secrets/planted.txt");
		return 0;
	}
	if (!strcmp(cmd, "grow")) {
		// Allocates 1 MiB blocks until the allocator fails. Each block is
		// written to, so that the compiler cannot drop the allocation.
		int mb = 0;
		for (;;) {
			volatile char *p = malloc(1 << 20);
			if (p == NULL) break;
			p[0] = 1;
			mb++;
		}
		printf("allocated %d MiB before malloc failed\n", mb);
		return 0;
	}
	fprintf(stderr, "unknown command %s\n", cmd);
	return 64;
}
