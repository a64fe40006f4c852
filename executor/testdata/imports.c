// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// imports needs host functions no node provides.
__attribute__((import_module("env"), import_name("host_magic"))) int host_magic(void);
__attribute__((import_module("env"), import_name("host_other"))) int host_other(int);

int main(void) { return host_magic() + host_other(1); }
