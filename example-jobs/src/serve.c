// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// serve is a long-running HTTP server for the driver's command mode with a
// granted listener. WebAssembly (WASI preview 1) cannot create sockets, so
// the driver binds the listening socket for the task and hands it to the
// module already open; WASM_LISTENER_<LABEL> names its descriptor
// (WASM_LISTENER_HTTP here, for a listener labelled "http"). The module only
// accepts connections on it.
//
// This is a deliberately tiny server: one connection at a time, one request
// per connection, requests read up to their blank line (bodies ignored).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h> // accept and shutdown, from wasi-libc's sock_accept
#include <unistd.h>

// write_all writes all n bytes of p to fd.
static int write_all(int fd, const char *p, size_t n) {
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR) continue;
			return -1;
		}
		p += (size_t)w;
		n -= (size_t)w;
	}
	return 0;
}

// handle reads one request from the connection c, answers it and closes c.
static void handle(int c) {
	// Read the request head: until the blank line, or 8 KiB.
	char req[8192];
	size_t n = 0;
	while (n < sizeof req - 1) {
		ssize_t r = read(c, req + n, sizeof req - 1 - n);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) break;
		n += (size_t)r;
		req[n] = 0;
		if (strstr(req, "\r\n\r\n")) break;
	}
	req[n] = 0;

	// The request line is "METHOD /path?query HTTP/1.1": take the path.
	char path[1024] = "/";
	const char *p = strchr(req, ' ');
	if (p) {
		p++;
		size_t len = strcspn(p, "? \r\n");
		if (len >= sizeof path) len = sizeof path - 1;
		memcpy(path, p, len);
		path[len] = 0;
	}

	char body[1100];
	if (strcmp(path, "/health") == 0)
		snprintf(body, sizeof body, "ok\n");
	else
		snprintf(body, sizeof body, "Hello from a WebAssembly listener: %s\n", path);

	char resp[1300];
	int len = snprintf(resp, sizeof resp,
		"HTTP/1.1 200 OK\r\n"
		"Content-Type: text/plain\r\n"
		"Content-Length: %zu\r\n"
		"Connection: close\r\n"
		"\r\n"
		"%s", strlen(body), body);
	if (write_all(c, resp, (size_t)len) < 0) perror("write");
	shutdown(c, SHUT_WR);
	close(c);
}

int main(void) {
	const char *fd_env = getenv("WASM_LISTENER_HTTP");
	if (!fd_env || !*fd_env) {
		fprintf(stderr, "serve: WASM_LISTENER_HTTP is not set: give the task a listener labelled \"http\"\n");
		return 2;
	}
	int listener = atoi(fd_env);
	fprintf(stderr, "serve: accepting connections on fd %d\n", listener);

	for (;;) {
		// This wasi-libc's accept always fills in the peer address (an
		// empty one: WASI does not tell it), so give it somewhere to.
		struct sockaddr_storage peer;
		socklen_t peer_len = sizeof peer;
		int c = accept(listener, (struct sockaddr *)&peer, &peer_len);
		if (c < 0) {
			if (errno == EINTR) continue;
			perror("serve: accept");
			return 1;
		}
		handle(c);
	}
}
