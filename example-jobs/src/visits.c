// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// visits is an HTTP handler (the driver's http mode, CGI style) that calls
// another service on every request: a counter at UPSTREAM (host:port, an
// IPv4 address or a name), over HTTP/1.0, through WasmEdge's socket
// extension to WASI preview 1. The task's outbound rules must allow the
// counter's address and port; a refused connection (EACCES) answers 502
// with the reason.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wasi/api.h>

// WasmEdge's socket extension, as its C header declares it.
#define IMPORT(name) __attribute__((import_module("wasi_snapshot_preview1"), import_name(name)))

typedef struct {
	uint8_t *buf;
	uint32_t buf_len;
} address_t;

typedef struct {
	uint32_t family;
	uint32_t data_len;
	uint8_t *data;
} sockaddr_t;

typedef struct {
	uint16_t flags;
	uint8_t family, socktype, protocol;
	uint32_t addrlen;
	sockaddr_t *addr;
	char *canonname;
	uint32_t canonname_len;
	void *next;
} addrinfo_t;

IMPORT("sock_open") int32_t sock_open(int32_t af, int32_t socktype, int32_t *fd);
IMPORT("sock_connect") int32_t sock_connect(int32_t fd, address_t *addr, int32_t port);
IMPORT("sock_getaddrinfo")
int32_t sock_getaddrinfo(const char *node, uint32_t node_len, const char *service, uint32_t service_len,
                         addrinfo_t *hints, addrinfo_t **res, uint32_t max_len, uint32_t *res_len);

static int fail(const char *upstream, const char *step, int e) {
	printf("Status: 502 Bad Gateway\nContent-Type: text/plain\n\n");
	printf("visits: cannot reach the counter at %s: %s: errno %d%s\n", upstream, step, e,
	       e == __WASI_ERRNO_ACCES ? " (refused: the task's outbound rules do not allow it)" : "");
	return 0;
}

int main(void) {
	const char *path = getenv("PATH_INFO");
	if (path && strcmp(path, "/health") == 0) {
		printf("Content-Type: text/plain\n\nok\n");
		return 0;
	}
	const char *upstream = getenv("UPSTREAM");
	if (!upstream || !strchr(upstream, ':')) {
		printf("Status: 500 Internal Server Error\nContent-Type: text/plain\n\nvisits: set UPSTREAM to the counter's host:port\n");
		return 0;
	}
	char host[256];
	size_t hostLen = strchr(upstream, ':') - upstream;
	if (hostLen >= sizeof host) return fail(upstream, "host name too long", 0);
	memcpy(host, upstream, hostLen);
	host[hostLen] = 0;
	int port = atoi(strchr(upstream, ':') + 1);

	// The counter's address: as given, or resolved by the host.
	uint8_t ip[4];
	unsigned a, b, c, d;
	if (sscanf(host, "%u.%u.%u.%u", &a, &b, &c, &d) == 4) {
		ip[0] = a, ip[1] = b, ip[2] = c, ip[3] = d;
	} else {
		uint8_t data[26];
		sockaddr_t sa = {0, sizeof data, data};
		char canon[30];
		addrinfo_t res = {0}, hints = {0};
		res.addr = &sa;
		res.canonname = canon;
		hints.family = 1;   // IPv4
		hints.socktype = 2; // stream
		addrinfo_t *first = &res;
		uint32_t n = 0;
		int e = sock_getaddrinfo(host, strlen(host), "", 0, &hints, &first, 1, &n);
		if (e || n < 1) return fail(upstream, "sock_getaddrinfo", e);
		memcpy(ip, data + 2, 4);
	}

	int32_t fd;
	int e = sock_open(1, 2, &fd);
	if (e) return fail(upstream, "sock_open", e);
	address_t addr = {ip, 4};
	if ((e = sock_connect(fd, &addr, port))) return fail(upstream, "sock_connect", e);
	char req[512];
	int reqLen = snprintf(req, sizeof req, "GET /visit HTTP/1.0\r\nHost: %s\r\n\r\n", upstream);
	for (int off = 0; off < reqLen;) {
		__wasi_ciovec_t iov = {(const uint8_t *)req + off, reqLen - off};
		__wasi_size_t sent;
		if ((e = __wasi_sock_send(fd, &iov, 1, 0, &sent))) return fail(upstream, "sock_send", e);
		off += sent;
	}
	char resp[4096];
	size_t got = 0;
	for (;;) {
		__wasi_iovec_t iov = {(uint8_t *)resp + got, sizeof resp - 1 - got};
		__wasi_size_t n;
		__wasi_roflags_t flags;
		if ((e = __wasi_sock_recv(fd, &iov, 1, 0, &n, &flags))) return fail(upstream, "sock_recv", e);
		if (n == 0 || got + n >= sizeof resp - 1) {
			got += n;
			break;
		}
		got += n;
	}
	resp[got] = 0;
	(void)__wasi_fd_close(fd);
	if (strncmp(resp, "HTTP/", 5) != 0) {
		// Through a service mesh's sidecar the connection is the local
		// proxy's: a refused upstream (an intention that denies it) is a
		// connection closed without an answer.
		printf("Status: 502 Bad Gateway\nContent-Type: text/plain\n\n");
		printf("visits: cannot reach the counter at %s: it closed the connection without an answer\n", upstream);
		return 0;
	}
	const char *body = strstr(resp, "\r\n\r\n");
	body = body ? body + 4 : "";

	printf("Content-Type: text/plain\n\n");
	printf("Hello from WebAssembly! The counter at %s says: %s", upstream, body);
	return 0;
}
