// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// greet is an HTTP handler for the driver's http mode (WAGI, CGI style).
// The driver runs a fresh instance of the module for every request:
//   - the request arrives in environment variables: REQUEST_METHOD,
//     PATH_INFO, QUERY_STRING, CONTENT_TYPE, HTTP_<HEADER>, ...;
//   - the request body, if any, is on stdin;
//   - the response goes to stdout: CGI headers (Content-Type, Status,
//     Location, any other header), a blank line, then the body.
// Exiting 0 means success; a trap or any other exit code becomes a 500.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// env returns the named variable, or "" if it is not set.
static const char *env(const char *name) {
	const char *v = getenv(name);
	return v ? v : "";
}

int main(void) {
	const char *path = env("PATH_INFO");

	// A health check for the service's check block.
	if (strcmp(path, "/health") == 0) {
		printf("Content-Type: text/plain\n\nok\n");
		return 0;
	}

	// Headers, the blank line, then the body. With no Status header the
	// response is a 200 OK.
	printf("Content-Type: text/plain\n");
	printf("\n");
	printf("Hello from WebAssembly! You asked for %s (%s, %s)\n",
		path, env("REQUEST_METHOD"), env("QUERY_STRING"));
	return 0;
}
