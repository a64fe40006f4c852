// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

// errNetNS is a failure to enter or leave the allocation's network
// namespace (inNetNS, asUserOnThread): the node's, whatever the task runs.
type errNetNS struct{ error }

func (e errNetNS) Unwrap() error { return e.error }
