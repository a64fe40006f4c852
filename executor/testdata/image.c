// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// image: a guest with 96 KiB of initialised data, enough for the executor
// to map it as a memory image, and a zero-initialised counter. It prints
// the first, middle and last bytes of its data and the counter, then
// overwrites all four: every instance must print "A M Z 0", whatever the
// instance before it wrote.
#include <stdio.h>

#define SIZE (96 * 1024)

static volatile unsigned char data[SIZE] = {[0] = 'A', [SIZE / 2] = 'M', [SIZE - 1] = 'Z'};
static volatile int counter;

int main(void) {
	printf("%c %c %c %d\n", data[0], data[SIZE / 2], data[SIZE - 1], counter);
	data[0] = 'x';
	data[SIZE / 2] = 'y';
	data[SIZE - 1] = 'z';
	counter++;
	return 0;
}
