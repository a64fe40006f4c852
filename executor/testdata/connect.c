// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// connect: an outbound TCP client through WasmEdge's socket extension to
// WASI preview 1, as WasmEdge's C header declares it. Usage:
//
//	connect MODE HOST PORT MESSAGE
//	connect loop HOST PORT N
//
// MODE is block (blocking calls) or nonblock (a non-blocking connect,
// sends and receives, each waited for in poll_oneoff). loop times N
// blocking round trips (connect, send "x", shut down writing, receive to
// the end, close) and prints the median and 99th percentile in
// microseconds: the benchmark of a guest's connect and round trip.
//
// As an HTTP handler (the driver's http mode: REQUEST_METHOD is set) it
// connects to 127.0.0.1:PORT (the query string), answers, and exits without
// closing the connection: the driver closes it when the request ends. HOST is an IPv4
// address or a name, resolved with sock_getaddrinfo. It connects, sends
// MESSAGE, shuts down its writing side, prints what it receives until the
// peer closes, and exits 0; on a failure it prints the step and the WASI
// errno to stderr and exits with the errno (1 for anything else).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wasi/api.h>

#define IMPORT(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(name)))

typedef struct {
	uint8_t *buf;
	uint32_t buf_len;
} wasi_address_t;

typedef struct {
	uint32_t sa_family;
	uint32_t sa_data_len;
	uint8_t *sa_data;
} wasi_sockaddr_t;

typedef struct {
	uint16_t ai_flags;
	uint8_t ai_family;
	uint8_t ai_socktype;
	uint8_t ai_protocol;
	uint32_t ai_addrlen;
	wasi_sockaddr_t *ai_addr;
	char *ai_canonname;
	uint32_t ai_canonname_len;
	void *ai_next;
} wasi_addrinfo_t;

IMPORT("sock_open") int32_t sock_open(int32_t af, int32_t socktype, int32_t *fd);
IMPORT("sock_connect") int32_t sock_connect(int32_t fd, wasi_address_t *addr, int32_t port);
IMPORT("sock_getaddrinfo")
int32_t sock_getaddrinfo(const char *node, uint32_t node_len, const char *server, uint32_t server_len,
                         wasi_addrinfo_t *hint, wasi_addrinfo_t **res, uint32_t max_len, uint32_t *res_len);
IMPORT("sock_getsockopt") int32_t sock_getsockopt(int32_t fd, int32_t level, int32_t name, int32_t *value, uint32_t *len);
IMPORT("sock_getpeeraddr") int32_t sock_getpeeraddr(int32_t fd, wasi_address_t *addr, uint32_t *addr_type, uint32_t *port);

static int fail(const char *step, int e) {
	fprintf(stderr, "%s: errno %d\n", step, e);
	return e ? e : 1;
}

// waitFor waits in poll_oneoff until fd is ready to read or write.
static int waitFor(int fd, int write) {
	__wasi_subscription_t sub = {0};
	sub.userdata = 42;
	sub.u.tag = write ? __WASI_EVENTTYPE_FD_WRITE : __WASI_EVENTTYPE_FD_READ;
	sub.u.u.fd_read.file_descriptor = fd;
	__wasi_event_t ev;
	__wasi_size_t n;
	int e = __wasi_poll_oneoff(&sub, &ev, 1, &n);
	if (e) return e;
	if (n != 1 || ev.userdata != 42 || ev.error) return ev.error ? ev.error : 1;
	return 0;
}

static int cmp(const void *a, const void *b) {
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

// loop times n round trips to ip:port; see the usage above.
static int loop(uint8_t ip[4], int port, int n) {
	double *took = calloc(n, sizeof *took);
	for (int i = 0; i < n; i++) {
		__wasi_timestamp_t t0, t1;
		(void)__wasi_clock_time_get(__WASI_CLOCKID_MONOTONIC, 1, &t0);
		int32_t fd;
		int e = sock_open(1, 2, &fd);
		if (e) return fail("sock_open", e);
		wasi_address_t addr = {ip, 4};
		if ((e = sock_connect(fd, &addr, port))) return fail("sock_connect", e);
		__wasi_ciovec_t out = {(const uint8_t *)"x", 1};
		__wasi_size_t sent;
		if ((e = __wasi_sock_send(fd, &out, 1, 0, &sent))) return fail("sock_send", e);
		if ((e = __wasi_sock_shutdown(fd, __WASI_SDFLAGS_WR))) return fail("sock_shutdown", e);
		for (;;) {
			char buf[64];
			__wasi_iovec_t in = {(uint8_t *)buf, sizeof buf};
			__wasi_size_t got;
			__wasi_roflags_t flags;
			if ((e = __wasi_sock_recv(fd, &in, 1, 0, &got, &flags))) return fail("sock_recv", e);
			if (got == 0) break;
		}
		if ((e = __wasi_fd_close(fd))) return fail("fd_close", e);
		(void)__wasi_clock_time_get(__WASI_CLOCKID_MONOTONIC, 1, &t1);
		took[i] = (double)(t1 - t0) / 1000.0;
	}
	qsort(took, n, sizeof *took, cmp);
	printf("p50-us %.1f p99-us %.1f\n", took[n / 2], took[n * 99 / 100]);
	return 0;
}

int main(int argc, char **argv) {
	if (getenv("REQUEST_METHOD")) {
		const char *query = getenv("QUERY_STRING");
		int32_t fd;
		uint8_t ip[4] = {127, 0, 0, 1};
		wasi_address_t addr = {ip, 4};
		int e = sock_open(1, 2, &fd);
		if (e == 0) e = sock_connect(fd, &addr, query ? atoi(query) : 0);
		printf("Content-Type: text/plain\n\nconnect errno %d\n", e);
		return 0;
	}
	if (argc == 5 && strcmp(argv[1], "loop") == 0) {
		unsigned a, b, c, d;
		if (sscanf(argv[2], "%u.%u.%u.%u", &a, &b, &c, &d) != 4) return fail("loop: HOST must be an IPv4 address", 0);
		uint8_t ip[4] = {a, b, c, d};
		return loop(ip, atoi(argv[3]), atoi(argv[4]));
	}
	if (argc != 5) {
		fprintf(stderr, "usage: connect block|nonblock HOST PORT MESSAGE | connect loop HOST PORT N\n");
		return 1;
	}
	int nonblock = strcmp(argv[1], "nonblock") == 0;
	const char *host = argv[2];
	int port = atoi(argv[3]);
	const char *msg = argv[4];

	uint8_t ip[4];
	unsigned a, b, c, d;
	if (sscanf(host, "%u.%u.%u.%u", &a, &b, &c, &d) == 4) {
		ip[0] = a, ip[1] = b, ip[2] = c, ip[3] = d;
	} else {
		uint8_t data[26];
		wasi_sockaddr_t sa = {0, sizeof data, data};
		char canon[30];
		wasi_addrinfo_t res = {0}, hint = {0};
		res.ai_addr = &sa;
		res.ai_canonname = canon;
		hint.ai_family = 1;     // inet4
		hint.ai_socktype = 2;   // stream
		wasi_addrinfo_t *first = &res;
		uint32_t n = 0;
		int e = sock_getaddrinfo(host, strlen(host), "", 0, &hint, &first, 1, &n);
		if (e) return fail("sock_getaddrinfo", e);
		if (n != 1 || sa.sa_family != 1) return fail("sock_getaddrinfo: no IPv4 address", 0);
		memcpy(ip, data + 2, 4);
		printf("resolved %s to %u.%u.%u.%u\n", host, ip[0], ip[1], ip[2], ip[3]);
	}

	int32_t fd;
	int e = sock_open(1, 2, &fd);
	if (e) return fail("sock_open", e);
	if (nonblock) {
		__wasi_fdstat_t st;
		if ((e = __wasi_fd_fdstat_get(fd, &st))) return fail("fd_fdstat_get", e);
		if ((e = __wasi_fd_fdstat_set_flags(fd, st.fs_flags | __WASI_FDFLAGS_NONBLOCK))) return fail("fd_fdstat_set_flags", e);
	}
	wasi_address_t addr = {ip, 4};
	e = sock_connect(fd, &addr, port);
	if (e == __WASI_ERRNO_INPROGRESS && nonblock) {
		if ((e = waitFor(fd, 1))) return fail("poll_oneoff (connect)", e);
		int32_t soerr = -1;
		uint32_t len = sizeof soerr;
		if ((e = sock_getsockopt(fd, 0, 2 /* SO_ERROR */, &soerr, &len))) return fail("sock_getsockopt", e);
		e = soerr;
	}
	if (e) return fail("sock_connect", e);
	uint8_t peer[4];
	wasi_address_t pa = {peer, 4};
	uint32_t kind, peerPort;
	if ((e = sock_getpeeraddr(fd, &pa, &kind, &peerPort))) return fail("sock_getpeeraddr", e);
	printf("connected to %u.%u.%u.%u:%u\n", peer[0], peer[1], peer[2], peer[3], peerPort);
	fflush(stdout);

	size_t off = 0, len = strlen(msg);
	while (off < len) {
		__wasi_ciovec_t iov = {(const uint8_t *)msg + off, len - off};
		__wasi_size_t sent;
		e = __wasi_sock_send(fd, &iov, 1, 0, &sent);
		if (e == __WASI_ERRNO_AGAIN && nonblock) {
			if ((e = waitFor(fd, 1))) return fail("poll_oneoff (send)", e);
			continue;
		}
		if (e) return fail("sock_send", e);
		off += sent;
	}
	if ((e = __wasi_sock_shutdown(fd, __WASI_SDFLAGS_WR))) return fail("sock_shutdown", e);
	printf("received: ");
	for (;;) {
		char buf[256];
		__wasi_iovec_t iov = {(uint8_t *)buf, sizeof buf};
		__wasi_size_t got;
		__wasi_roflags_t flags;
		e = __wasi_sock_recv(fd, &iov, 1, 0, &got, &flags);
		if (e == __WASI_ERRNO_AGAIN && nonblock) {
			if ((e = waitFor(fd, 0))) return fail("poll_oneoff (recv)", e);
			continue;
		}
		if (e) return fail("sock_recv", e);
		if (got == 0) break;
		fwrite(buf, 1, got, stdout);
	}
	printf("\n");
	if ((e = __wasi_fd_close(fd))) return fail("fd_close", e);
	return 0;
}
