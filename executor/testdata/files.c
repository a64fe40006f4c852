// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// files: a file-heavy guest for the WASI host's benchmark. In the
// directory argv[1] it creates argv[2] small files, writes each, reads
// each back, stats each, lists the directory, and removes them all:
// what a build step or a cache does with many small files. It exits 1
// if anything read back differs from what was written.
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: files DIR COUNT\n");
		return 2;
	}
	const char *dir = argv[1];
	int count = atoi(argv[2]);
	char path[512], data[256], back[256];
	for (int i = 0; i < count; i++) {
		snprintf(path, sizeof path, "%s/f%04d.txt", dir, i);
		memset(data, 'a' + i % 26, sizeof data);
		int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
		if (fd < 0 || write(fd, data, sizeof data) != sizeof data || close(fd) != 0) {
			perror(path);
			return 1;
		}
	}
	for (int i = 0; i < count; i++) {
		snprintf(path, sizeof path, "%s/f%04d.txt", dir, i);
		memset(data, 'a' + i % 26, sizeof data);
		struct stat st;
		int fd = open(path, O_RDONLY);
		if (fd < 0 || read(fd, back, sizeof back) != sizeof back || close(fd) != 0 ||
		    memcmp(data, back, sizeof data) != 0 || stat(path, &st) != 0 || st.st_size != sizeof data) {
			fprintf(stderr, "%s: not what was written\n", path);
			return 1;
		}
	}
	DIR *d = opendir(dir);
	int listed = 0;
	for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
		listed += e->d_name[0] == 'f';
	}
	if (!d || closedir(d) != 0 || listed != count) {
		fprintf(stderr, "%s: listed %d of %d files\n", dir, listed, count);
		return 1;
	}
	for (int i = 0; i < count; i++) {
		snprintf(path, sizeof path, "%s/f%04d.txt", dir, i);
		if (unlink(path) != 0) {
			perror(path);
			return 1;
		}
	}
	return 0;
}
