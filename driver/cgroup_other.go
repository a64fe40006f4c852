// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package driver

import "errors"

func cgroupVersion() (string, error) {
	return "", errors.New("cgroups are Linux's: the task's CPU and memory are not limited by them")
}

func makeCgroups(string, cgroupLimits) (taskCgroups, error) {
	_, err := cgroupVersion()
	return taskCgroups{}, err
}

func removeCgroups([]string) {}

func memoryCgroup([]string) string { return "" }

func cgroupMemoryUsage(string) uint64 { return 0 }

func cgroupOOMKills(string) int { return 0 }
