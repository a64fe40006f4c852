// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// upper copies a file to stdout (and, given a second path, to that file)
// in upper case. Usage: upper.wasm INPUT [OUTPUT]
#include <ctype.h>
#include <stdio.h>

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: upper.wasm INPUT [OUTPUT]\n");
		return 2;
	}
	FILE *in = fopen(argv[1], "r");
	if (!in) {
		perror(argv[1]);
		return 1;
	}
	FILE *out = NULL;
	if (argc > 2 && !(out = fopen(argv[2], "w"))) {
		perror(argv[2]);
		return 1;
	}
	int c;
	while ((c = fgetc(in)) != EOF) {
		putchar(toupper(c));
		if (out) fputc(toupper(c), out);
	}
	fclose(in);
	if (out) fclose(out);
	return 0;
}
