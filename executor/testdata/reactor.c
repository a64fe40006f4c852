// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// reactor has no _start; it exports run, which a task names as entrypoint.
// Build with -mexec-model=reactor.
#include <stdio.h>

__attribute__((export_name("run"))) void run(void) {
	printf("reactor run called\n");
	fflush(stdout);
}
