// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package cgroups

import "errors"

func Version() (string, error) {
	return "", errors.New("cgroups are Linux's: the task's CPU and memory are not limited by them")
}

func Make(string, string, Limits) (Task, error) {
	_, err := Version()
	return Task{}, err
}

func Remove([]string) {}

func MemoryAmong([]string) string { return "" }

func MemoryUsage(string) uint64 { return 0 }

func OOMKills(string) int { return 0 }
