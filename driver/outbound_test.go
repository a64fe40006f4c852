// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"testing"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// TestOutboundConfig: the plugin config's outbound block is parsed when
// the agent starts (a malformed rule or network is an error naming it),
// and deny_networks defaults to the metadata address; a task's malformed
// rule is an error of its config.
func TestOutboundConfig(t *testing.T) {
	t.Parallel()
	c := Config{Outbound: OutboundConfig{Allow: []string{"tcp://*.consul:*", "tcp://10.0.0.0/8:443"}}}
	must.NoError(t, c.Validate())
	must.Eq(t, []string{"169.254.169.254/32"}, c.Outbound.DenyNetworks)
	must.Len(t, 2, c.Outbound.allow)

	c = Config{Outbound: OutboundConfig{Allow: []string{"db:5432"}}}
	must.ErrorContains(t, c.Validate(), `outbound.allow[0]: outbound rule "db:5432": it has no scheme`)
	c = Config{Outbound: OutboundConfig{DenyNetworks: []string{"loopback", "the internet"}}}
	must.ErrorContains(t, c.Validate(), `outbound.deny_networks[1]: "the internet" is not a network`)

	tc := TaskConfig{Module: "local/app.wasm", Outbound: []string{"tcp://db:5432", "tcp://db"}}
	must.ErrorContains(t, tc.Validate(), `outbound[1]: outbound rule "tcp://db": it has no port`)
}

// TestOutboundRequest: a task's rules reach the executor in canonical
// form with the operator's ceiling, denied networks and the group's DNS;
// a rule beyond the ceiling is a job error naming it; a task without
// rules sends none.
func TestOutboundRequest(t *testing.T) {
	t.Parallel()
	node := Config{Outbound: OutboundConfig{Allow: []string{"tcp://*.consul:*", "https://*.example.com"}}}
	must.NoError(t, node.Validate())
	cfg := &drivers.TaskConfig{DNS: &drivers.DNSConfig{Servers: []string{"127.0.0.2"}, Searches: []string{"service.consul"}}}

	out, err := outboundRequest(cfg, &TaskConfig{Outbound: []string{"TCP://DB.service.consul:5432", "https://api.example.com"}}, &node)
	must.NoError(t, err)
	must.Eq(t, &proto.Outbound{
		Rules:        []string{"tcp://db.service.consul:5432", "tcp://api.example.com:443"},
		Allow:        []string{"tcp://*.consul:*", "tcp://*.example.com:443"},
		DenyNetworks: []string{"169.254.169.254/32"},
		DnsServers:   []string{"127.0.0.2"},
		DnsSearches:  []string{"service.consul"},
	}, out)

	_, err = outboundRequest(cfg, &TaskConfig{Outbound: []string{"tcp://db.service.consul:5432", "tcp://10.1.2.3:22"}}, &node)
	must.ErrorContains(t, err, `outbound[1] "tcp://10.1.2.3:22" is beyond what this node's operator allows`)
	must.Eq(t, executor.ClassJob, executor.ClassOf(err))

	_, err = outboundRequest(cfg, &TaskConfig{Outbound: []string{"tcp://db.service.consul:5432"}}, &Config{})
	must.ErrorContains(t, err, "this node's operator allows no outbound connections")

	out, err = outboundRequest(cfg, &TaskConfig{}, &node)
	must.NoError(t, err)
	must.Nil(t, out)
}
