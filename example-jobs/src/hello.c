// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// hello greets from inside a Nomad allocation.
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
	const char *who = argc > 1 ? argv[1] : "Nomad";
	const char *alloc = getenv("NOMAD_ALLOC_ID");
	printf("Hello, %s, from WebAssembly!\n", who);
	printf("alloc %s, task %s\n", alloc ? alloc : "?", getenv("NOMAD_TASK_NAME") ? getenv("NOMAD_TASK_NAME") : "?");
	return 0;
}
