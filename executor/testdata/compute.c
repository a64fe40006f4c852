// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// compute is the CPU-bound guest of make bench's compute row: recursion, a
// sieve, a matrix multiply and integer mixing, with no host call until it
// prints its checksum. argv[1] scales the work (rounds, default 1). The
// same source is built natively, so the row compares like with like.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t fib(uint32_t n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static uint32_t sieve(uint32_t n) {
	static uint8_t composite[2000001];
	memset(composite, 0, n + 1);
	uint32_t count = 0;
	for (uint32_t i = 2; i <= n; i++) {
		if (composite[i]) continue;
		count++;
		for (uint64_t j = (uint64_t)i * i; j <= n; j += i) composite[j] = 1;
	}
	return count;
}

#define N 200
static double a[N][N], b[N][N], c[N][N];

static double matmul(uint32_t seed) {
	for (int i = 0; i < N; i++)
		for (int j = 0; j < N; j++) {
			a[i][j] = (double)((i * 31 + j * 17 + seed) % 97) / 97.0;
			b[i][j] = (double)((i * 13 + j * 7 + seed) % 89) / 89.0;
		}
	for (int i = 0; i < N; i++)
		for (int j = 0; j < N; j++) {
			double s = 0;
			for (int k = 0; k < N; k++) s += a[i][k] * b[k][j];
			c[i][j] = s;
		}
	double t = 0;
	for (int i = 0; i < N; i++) t += c[i][i];
	return t;
}

static uint64_t mix(uint64_t x, uint32_t rounds) {
	for (uint32_t i = 0; i < rounds; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
	}
	return x;
}

int main(int argc, char **argv) {
	int rounds = argc > 1 ? atoi(argv[1]) : 1;
	uint64_t sum = 0;
	for (int r = 0; r < rounds; r++) {
		sum += fib(27);
		sum += sieve(2000000);
		sum += (uint64_t)matmul((uint32_t)r);
		sum = mix(sum + 1, 20000000);
	}
	printf("%llu\n", (unsigned long long)sum);
	return 0;
}
