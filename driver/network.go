// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// networkNamespace is the allocation's network namespace when the group
// has one of its own (network { mode = "bridge" } or a CNI network), or
// empty for the host's.
func networkNamespace(cfg *drivers.TaskConfig) string {
	if cfg.NetworkIsolation == nil || cfg.NetworkIsolation.Mode != drivers.NetIsolationModeGroup {
		return ""
	}
	return cfg.NetworkIsolation.Path
}

// listener resolves a port label of the group's network block to where the
// executor binds it: inside the allocation's namespace, on every address
// and the port the label maps to ("to", else the host port); on the host,
// on the address and port Nomad allocated.
func listener(cfg *drivers.TaskConfig, field, label string) (*proto.Listener, error) {
	var ports []string
	if cfg.Resources != nil && cfg.Resources.Ports != nil {
		if p, ok := cfg.Resources.Ports.Get(label); ok {
			if networkNamespace(cfg) != "" {
				to := p.To
				if to < 1 {
					to = p.Value
				}
				return &proto.Listener{Label: label, Address: "0.0.0.0", Port: int32(to)}, nil
			}
			return &proto.Listener{Label: label, Address: p.HostIP, Port: int32(p.Value)}, nil
		}
		for _, p := range *cfg.Resources.Ports {
			ports = append(ports, p.Label)
		}
	}
	if len(ports) == 0 {
		return nil, executor.JobErrorf("%s names port %q, but the group has no ports: add network { port %q {} } to the task group", field, label, label)
	}
	sort.Strings(ports)
	return nil, executor.JobErrorf("%s names port %q, which is not in the group's network block (its ports: %s): add port %q {} to it, or use one of those labels", field, label, strings.Join(slices.Compact(ports), ", "), label)
}

// taskNetwork is where a task's guest serves: the listeners it is given
// (command mode) or its HTTP trigger, and the network namespace they are
// bound in.
type taskNetwork struct {
	listeners []*proto.Listener
	http      *proto.HTTPTrigger
	// namespace is the allocation's network namespace, or empty for the
	// host's (or where the guest serves nothing).
	namespace string
}

// networkFor resolves the task's listeners or HTTP trigger.
func networkFor(cfg *drivers.TaskConfig, tc *TaskConfig) (taskNetwork, error) {
	var n taskNetwork
	for _, label := range tc.Listeners {
		l, err := listener(cfg, "listeners", label)
		if err != nil {
			return taskNetwork{}, err
		}
		n.listeners = append(n.listeners, l)
	}
	if h := tc.HTTP; h.Port != "" {
		l, err := listener(cfg, "http.port", h.Port)
		if err != nil {
			return taskNetwork{}, err
		}
		timeout, _ := time.ParseDuration(h.Timeout) // checked by Validate
		n.http = &proto.HTTPTrigger{Listener: l, MaxConcurrency: int32(h.MaxConcurrency), TimeoutNanos: timeout.Nanoseconds(),
			MaxBodyBytes: h.MaxBodyBytes, AccessLog: h.AccessLog}
		if h.MetricsPort != "" {
			if n.http.Metrics, err = listener(cfg, "http.metrics_port", h.MetricsPort); err != nil {
				return taskNetwork{}, err
			}
		}
	}
	if len(n.listeners) > 0 || n.http != nil {
		n.namespace = networkNamespace(cfg)
	}
	return n, nil
}

// describeNetwork says where a task serves, for its task event.
func describeNetwork(req *proto.StartRequest) string {
	where := "on the host's network"
	if req.NetworkNamespace != "" {
		where = "in the allocation's network namespace"
	}
	var parts []string
	if req.Http != nil {
		parts = append(parts, fmt.Sprintf("Serving HTTP on %s (port %q) %s, one instance per request", executor.ListenerAddress(req.Http.Listener), req.Http.Listener.Label, where))
		if req.Http.Metrics != nil {
			parts = append(parts, fmt.Sprintf("metrics on %s", executor.ListenerAddress(req.Http.Metrics)))
		}
	}
	for _, l := range req.Listeners {
		parts = append(parts, fmt.Sprintf("%s on %s as %s", l.Label, executor.ListenerAddress(l), executor.ListenerEnv(l.Label)))
	}
	if req.Http == nil && len(parts) > 0 {
		return "Granted listeners " + where + ": " + strings.Join(parts, ", ")
	}
	return strings.Join(parts, "; ")
}
