// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// wagi is the test guest of the HTTP trigger (WAGI, CGI style): the host
// runs a fresh instance per request, passes the request in the environment
// (REQUEST_METHOD, PATH_INFO, QUERY_STRING, CONTENT_TYPE, HTTP_*, ...) and
// the body on stdin, and reads CGI headers, a blank line and the body from
// stdout. PATH_INFO selects the behaviour; see the routes in main.
//
// It is plain portable C: the same source builds for wasm32-wasi and
// natively (the process-per-request baseline of the benchmarks):
//   clang-14 --target=wasm32-wasi -O2 -Wl,--strip-all wagi.c -o wagi.wasm
//   gcc -O2 -static wagi.c -o wagi-native
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern char **environ;

// Per-instance state for /counter: in a fresh instance counter is 0 and
// marker_buf holds no marker.
static int counter;
static char marker_buf[32];
#define MARKER "wagi-was-here"

static const char *env(const char *name, const char *def) {
	const char *v = getenv(name);
	return v ? v : def;
}

// qparam returns the value of name in QUERY_STRING ("a=1&b=2") as a number,
// or def if absent.
static long qparam(const char *name, long def) {
	const char *q = env("QUERY_STRING", "");
	size_t n = strlen(name);
	while (*q) {
		if (strncmp(q, name, n) == 0 && q[n] == '=') return strtol(q + n + 1, NULL, 10);
		const char *amp = strchr(q, '&');
		if (!amp) break;
		q = amp + 1;
	}
	return def;
}

static void text(const char *body) {
	printf("Content-Type: text/plain\n\n%s", body);
}

static void echo(void) {
	printf("Content-Type: %s\n\n", env("CONTENT_TYPE", "application/octet-stream"));
	char buf[8192];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) fwrite(buf, 1, n, stdout);
}

static void grow(void) {
	long mb = qparam("mb", 0);
	// The chunks are chained through their first bytes, so a failure can
	// free them all before answering.
	void *head = NULL;
	for (long i = 0; i < mb; i++) {
		void **p = malloc(1 << 20);
		if (!p) {
			while (head) {
				void *next = *(void **)head;
				free(head);
				head = next;
			}
			printf("Status: 507 Insufficient Storage\nContent-Type: text/plain\n\nout of memory\n");
			return;
		}
		memset(p, 0xa5, 1 << 20); // touch every page
		*p = head;
		head = p;
	}
	// hold_ms keeps the memory for a while, so that a test can send a
	// request beside this one.
	long ms = qparam("hold_ms", 0);
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
	printf("Content-Type: text/plain\n\ngrew %ld\n", mb);
}

int main(void) {
	const char *path = env("PATH_INFO", "");
	const char *method = env("REQUEST_METHOD", "");
	const char *query = env("QUERY_STRING", "");

	if (strcmp(path, "/hello") == 0) {
		printf("Content-Type: text/plain\n\nhello %s %s %s\n", method, path, query);
	} else if (strcmp(path, "/echo") == 0) {
		echo();
	} else if (strcmp(path, "/env") == 0) {
		printf("Content-Type: text/plain\n\n");
		for (char **e = environ; *e; e++) printf("%s\n", *e);
	} else if (strcmp(path, "/status") == 0) {
		printf("Status: 404 Not Found\nContent-Type: text/plain\n\nnope\n");
	} else if (strcmp(path, "/redirect") == 0) {
		printf("Location: /hello\n\n");
	} else if (strcmp(path, "/header") == 0) {
		printf("Content-Type: text/plain\nX-Custom: yes\n\nok\n");
	} else if (strcmp(path, "/crlf") == 0) {
		// As /header, with CRLF line ends.
		printf("Content-Type: text/plain\r\nX-Custom: yes\r\n\r\nok\n");
	} else if (strcmp(path, "/counter") == 0) {
		counter++;
		int marker = strcmp(marker_buf, MARKER) == 0;
		strcpy(marker_buf, MARKER);
		printf("Content-Type: text/plain\n\ncounter=%d marker=%d\n", counter, marker);
	} else if (strcmp(path, "/trap") == 0) {
		fflush(stdout);
		__builtin_trap();
	} else if (strcmp(path, "/exit3") == 0) {
		printf("Content-Type: text/plain\n\npartial");
		exit(3); // flushes stdout
	} else if (strcmp(path, "/nohdr") == 0) {
		printf("just a body with no blank line\n");
	} else if (strcmp(path, "/badstatus") == 0) {
		printf("Status: abc\nContent-Type: text/plain\n\nbad status\n");
	} else if (strcmp(path, "/garbage") == 0) {
		unsigned char b[256];
		for (int i = 0; i < 256; i++) b[i] = (unsigned char)i;
		fwrite(b, 1, sizeof b, stdout);
	} else if (strcmp(path, "/hugeheader") == 0) {
		static char big[200000];
		memset(big, 'a', sizeof big);
		fputs("X-Big: ", stdout);
		fwrite(big, 1, sizeof big, stdout);
		printf("\nContent-Type: text/plain\n\nbig header\n");
	} else if (strcmp(path, "/silent") == 0) {
		// Nothing at all.
	} else if (strcmp(path, "/spin") == 0) {
		volatile unsigned long spins = 0;
		for (;;) spins++;
	} else if (strcmp(path, "/sleep") == 0) {
		long ms = qparam("ms", 0);
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		text("slept\n");
	} else if (strcmp(path, "/grow") == 0) {
		grow();
	} else if (strcmp(path, "/stderr") == 0) {
		fputs("stderr line from wagi\n", stderr);
		fflush(stderr);
		text("ok\n");
	} else {
		printf("Status: 404 Not Found\nContent-Type: text/plain\n\nno route %s\n", path);
	}
	fflush(stdout);
	return 0;
}
