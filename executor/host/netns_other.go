// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package host

import "errors"

// inNetNS runs fn; network namespaces exist only on Linux.
func inNetNS(path string, fn func() error) error {
	if path != "" {
		return errNetNS{errors.New("network namespaces (bridge networking) need Linux")}
	}
	return fn()
}
