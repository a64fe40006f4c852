// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package outbound

import (
	"net/netip"
	"testing"

	"github.com/shoenig/test/must"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"tcp://db.service.consul:5432", "tcp://db.service.consul:5432"},
		{"TCP://DB.Service.Consul.:5432", "tcp://db.service.consul:5432"},
		{"tcp://10.1.0.0/16:443", "tcp://10.1.0.0/16:443"},
		{"tcp://*.internal:8000..8099", "tcp://*.internal:8000..8099"},
		{"tcp://*:*", "tcp://*:*"},
		{"http://api.example.com", "tcp://api.example.com:80"},
		{"https://api.example.com", "tcp://api.example.com:443"},
		{"https://api.example.com:8443", "tcp://api.example.com:8443"},
		{"tcp://127.0.0.1:9000", "tcp://127.0.0.1:9000"},
		{"tcp://[::1]:9000", "tcp://[::1]:9000"},
		{"tcp://[fd00::]/8:22", "tcp://[fd00::]/8:22"},
		{"tcp://[fd00::/8]:22", "tcp://[fd00::]/8:22"},
		{"tcp://my_host-1:1", "tcp://my_host-1:1"},
	} {
		r, err := Parse(tc.in)
		must.NoError(t, err, must.Sprint(tc.in))
		must.Eq(t, tc.want, r.String(), must.Sprint(tc.in))
		again, err := Parse(r.String())
		must.NoError(t, err)
		must.Eq(t, r, again)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, says string }{
		{"db:5432", "no scheme"},
		{"udp://db:53", "not one of tcp, http, https"},
		{"tcp://db", "no port"},
		{"tcp://db:", "port is empty"},
		{"tcp://db:0", "from 1 to 65535"},
		{"tcp://db:65536", "from 1 to 65535"},
		{"tcp://db:+80", "from 1 to 65535"},
		{"tcp://db:90..80", "ends before it starts"},
		{"tcp://:80", "no host"},
		{"tcp://db*.x:80", "wildcard"},
		{"tcp://a.*.x:80", "wildcard"},
		{"tcp://fd00::1:80", "brackets"},
		{"tcp://[fd00::1:80", "closing bracket"},
		{"tcp://[10.0.0.1]:80", "not an IPv6"},
		{"tcp://10.1.0.1/16:80", "bits set past its length"},
		{"tcp://10.1.0.0/33:80", "not an IPv4 network"},
		{"tcp://300.1.1.1:80", "not a valid IPv4"},
		{"http://example.com/path", "path"},
		{"http://user@example.com", "path, query or user"},
		{"tcp://a..b:80", "empty or over-long label"},
		{"tcp://ex ample:80", "not a valid name"},
	} {
		_, err := Parse(tc.in)
		must.ErrorContains(t, err, tc.says, must.Sprint(tc.in))
		must.ErrorContains(t, err, "a rule is scheme://host:port", must.Sprint("the error says how a valid rule looks"))
	}
}

func mustRules(t *testing.T, list ...string) []Rule {
	t.Helper()
	rules, err := ParseRules("outbound", list)
	must.NoError(t, err)
	return rules
}

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		ceiling, rule string
		covers        bool
	}{
		{"tcp://*:*", "tcp://db:5432", true},
		{"tcp://*:*", "tcp://10.0.0.0/8:1..65535", true},
		{"tcp://*:5432", "tcp://db:5432..5433", false},
		{"tcp://*.consul:*", "tcp://db.service.consul:5432", true},
		{"tcp://*.consul:*", "tcp://*.service.consul:5432", true},
		{"tcp://*.consul:*", "tcp://consul:5432", false},
		{"tcp://*.consul:*", "tcp://*:5432", false},
		{"tcp://*.consul:*", "tcp://10.0.0.1:5432", false},
		{"tcp://10.0.0.0/8:*", "tcp://10.1.0.0/16:443", true},
		{"tcp://10.0.0.0/8:*", "tcp://10.1.2.3:443", true},
		{"tcp://10.0.0.0/8:*", "tcp://0.0.0.0/0:443", false},
		{"tcp://10.0.0.0/8:*", "tcp://db:443", false},
		{"tcp://db:*", "tcp://DB:80", true},
		{"tcp://db:*", "tcp://db2:80", false},
		{"tcp://[::]/0:*", "tcp://[::1]:80", true},
	} {
		c, r := mustRules(t, tc.ceiling)[0], mustRules(t, tc.rule)[0]
		must.Eq(t, tc.covers, c.Covers(r), must.Sprintf("%s covers %s", tc.ceiling, tc.rule))
	}
}

func TestCheckCeiling(t *testing.T) {
	must.NoError(t, CheckCeiling(mustRules(t, "tcp://db.service.consul:5432"), mustRules(t, "tcp://*.consul:*")))
	must.NoError(t, CheckCeiling(nil, nil))
	err := CheckCeiling(mustRules(t, "tcp://db.service.consul:5432", "tcp://evil.example.com:443"), mustRules(t, "tcp://*.consul:*"))
	must.ErrorContains(t, err, `outbound[1] "tcp://evil.example.com:443" is beyond what this node's operator allows`)
	err = CheckCeiling(mustRules(t, "tcp://db:5432"), nil)
	must.ErrorContains(t, err, "allows no outbound connections")
}

func TestPolicy(t *testing.T) {
	deny, err := ParseNetworks(DefaultDenyNetworks)
	must.NoError(t, err)
	p := &Policy{
		Job:      mustRules(t, "tcp://db.service.consul:5432", "tcp://10.1.0.0/16:443", "tcp://*:8080"),
		Operator: mustRules(t, "tcp://*:*"),
		Deny:     deny,
	}
	ip := netip.MustParseAddr
	for _, tc := range []struct {
		addr  string
		port  uint16
		names []string
		ok    bool
	}{
		{"10.9.9.9", 5432, []string{"db.service.consul"}, true},
		{"10.9.9.9", 5432, []string{"DB.service.consul."}, true},
		{"10.9.9.9", 5432, nil, false},                                // not resolved by the task
		{"10.9.9.9", 5433, []string{"db.service.consul"}, false},      // wrong port
		{"10.1.2.3", 443, nil, true},                                  // in the network
		{"::ffff:10.1.2.3", 443, nil, true},                           // the same, mapped
		{"10.2.2.3", 443, nil, false},                                 // outside it
		{"192.0.2.1", 8080, nil, true},                                // any host
		{"169.254.169.254", 8080, nil, false},                         // denied by the operator
		{"::ffff:169.254.169.254", 8080, []string{"metadata"}, false}, // denied, mapped
	} {
		ok, why := p.Allow(ip(tc.addr), tc.port, tc.names)
		must.Eq(t, tc.ok, ok, must.Sprintf("%s:%d %v: %s", tc.addr, tc.port, tc.names, why))
		if !ok {
			must.NotEq(t, "", why)
		}
	}
	must.True(t, p.MayResolve("db.service.consul")) // *:8080 allows every name anyway
	strict := &Policy{Job: mustRules(t, "tcp://db.service.consul:5432"), Operator: mustRules(t, "tcp://*.consul:*")}
	must.True(t, strict.MayResolve("db.service.consul"))
	must.False(t, strict.MayResolve("example.com"))
	ok, why := (&Policy{Job: mustRules(t, "tcp://*:*")}).Allow(ip("192.0.2.1"), 80, nil)
	must.False(t, ok)
	must.StrContains(t, why, "operator")
	var none *Policy
	must.True(t, none.Empty())
	ok, _ = none.Allow(ip("127.0.0.1"), 80, nil)
	must.False(t, ok)
}

func TestParseNetworks(t *testing.T) {
	n, err := ParseNetworks([]string{"loopback", "Private", "link-local", "192.0.2.0/24", "[fd12::]/16", "203.0.113.7"})
	must.NoError(t, err)
	for _, a := range []string{"127.0.0.1", "::1", "10.1.1.1", "172.16.0.1", "192.168.1.1", "fd00::1", "169.254.169.254", "fe80::1", "192.0.2.9", "203.0.113.7"} {
		must.True(t, n.Contains(netip.MustParseAddr(a)), must.Sprint(a))
	}
	must.False(t, n.Contains(netip.MustParseAddr("8.8.8.8")))
	_, err = ParseNetworks([]string{"internet"})
	must.ErrorContains(t, err, `deny_networks[0]: "internet" is not a network`)
}

// FuzzParse: Parse never panics, and a rule it accepts reads back from its
// canonical form as the same rule.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"tcp://db.service.consul:5432", "tcp://10.1.0.0/16:443", "tcp://*.internal:8000..8099",
		"http://x", "https://[::1]", "tcp://[fd00::]/8:*", "tcp://*:*", "tcp://a:1..", "tcp://[", "tcp://1.2.3.4/0:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(r.String())
		if err != nil {
			t.Fatalf("%q parsed as %q, which does not parse: %v", s, r.String(), err)
		}
		if again != r {
			t.Fatalf("%q parsed as %q, which parses as %q", s, r, again)
		}
		if !r.Covers(r) {
			t.Fatalf("%q does not cover itself", r)
		}
	})
}
