// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// files reads the file a template rendered into /local, prints the task's
// NOMAD_* environment, and writes a result into the shared /alloc/data.
#include <stdio.h>
#include <string.h>

extern char **environ;

int main(void) {
	char line[256];
	FILE *in = fopen("/local/greeting.txt", "r");
	if (!in) {
		perror("open /local/greeting.txt");
		return 1;
	}
	while (fgets(line, sizeof line, in)) printf("template: %s", line);
	fclose(in);
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "NOMAD_", 6) == 0) printf("env: %s\n", *e);
	FILE *out = fopen("/alloc/data/result.txt", "w");
	if (!out) {
		perror("open /alloc/data/result.txt");
		return 1;
	}
	fputs("written by the wasm task\n", out);
	fclose(out);
	printf("wrote /alloc/data/result.txt\n");
	return 0;
}
