// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package outbound is the policy for a guest's outbound connections: the
// rules a job lists (task config outbound), the ceiling the node's
// operator sets (plugin config outbound { allow, deny_networks }), and
// the check of each connect against both. It links no wazero: the driver
// checks a job's rules against the ceiling before it starts the task, and
// the executor's WASI host checks each connect.
//
// A rule is scheme://host[:ports], the shapes of Spin's
// allowed_outbound_hosts:
//
//   - scheme: tcp, or http and https, which are tcp with the default
//     ports 80 and 443 when none is given;
//   - host: a name (db.service.consul), "*" (any host), "*.suffix" (any
//     name under suffix, not suffix itself), an IP address (10.1.2.3,
//     [::1]) or a network in CIDR notation (10.1.0.0/16, [fd00::]/8);
//   - ports: a port (5432), a range (8000..8099) or "*" (any); a tcp rule
//     must say which.
//
// Deny by default: a connect is allowed when its address and port match a
// rule of the job's and one of the operator's, and its address is in none
// of the operator's denied networks, which win over any rule. A rule with
// a name matches the addresses the host resolved for that name for the
// task (sock_getaddrinfo); a guest may resolve only names a rule of its
// allows ("*" allows every name).
package outbound

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// hostKind is what a rule's host is.
type hostKind uint8

const (
	anyHost hostKind = iota + 1 // "*"
	name                        // a host name
	suffix                      // "*.suffix"
	network                     // an address or a CIDR network
)

// Rule is one outbound rule.
type Rule struct {
	kind hostKind
	// host is the name or suffix (lower case, without a final dot), for
	// name and suffix rules.
	host string
	// prefix is the address (a full-length prefix) or network, for
	// network rules.
	prefix netip.Prefix
	// lo and hi bound the ports, inclusive.
	lo, hi uint16
}

// defaultPorts are the ports of the schemes that have one.
var defaultPorts = map[string]uint16{"http": 80, "https": 443}

// Parse parses one rule. Its error says what is wrong with it and how a
// valid one looks.
func Parse(s string) (Rule, error) {
	r, err := parse(s)
	if err != nil {
		return Rule{}, fmt.Errorf("outbound rule %q: %w; a rule is scheme://host:port, e.g. \"tcp://db.service.consul:5432\", \"tcp://10.1.0.0/16:443\", \"tcp://*.internal:8000..8099\" or \"https://api.example.com\"", s, err)
	}
	return r, nil
}

func parse(s string) (Rule, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Rule{}, errors.New("it has no scheme (tcp://, http:// or https://)")
	}
	var r Rule
	scheme = strings.ToLower(scheme)
	if scheme != "tcp" && scheme != "http" && scheme != "https" {
		return Rule{}, fmt.Errorf("scheme %q is not one of tcp, http, https", scheme)
	}
	if strings.ContainsAny(rest, "/?#@") && !isCIDR(rest) {
		return Rule{}, errors.New("it has a path, query or user part: a rule names a host and ports only")
	}
	host, ports, err := splitHostPorts(rest)
	if err != nil {
		return Rule{}, err
	}
	if err := r.parseHost(host); err != nil {
		return Rule{}, err
	}
	switch {
	case ports == "" && defaultPorts[scheme] != 0:
		r.lo, r.hi = defaultPorts[scheme], defaultPorts[scheme]
	case ports == "":
		return Rule{}, errors.New("it has no port: a tcp rule says which, as a port (:5432), a range (:8000..8099) or any (:*)")
	default:
		if r.lo, r.hi, err = parsePorts(ports); err != nil {
			return Rule{}, err
		}
	}
	return r, nil
}

// isCIDR says whether rest's host part is meant as a network: its only
// slash is followed by a prefix length (parseHost then checks it).
func isCIDR(rest string) bool {
	if strings.ContainsAny(rest, "?#@") || strings.Count(rest, "/") != 1 {
		return false
	}
	host, _, err := splitHostPorts(rest)
	if err != nil {
		return false
	}
	_, bits, _ := strings.Cut(host, "/")
	bits = strings.TrimSuffix(bits, "]")
	return bits != "" && strings.Trim(bits, "0123456789") == ""
}

// splitHostPorts splits host[:ports]; an IPv6 host is in brackets,
// [addr] or [addr]/len.
func splitHostPorts(rest string) (host, ports string, err error) {
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return "", "", errors.New("its IPv6 address has no closing bracket")
		}
		host, after := rest[:end+1], rest[end+1:]
		if strings.HasPrefix(after, "/") {
			n := strings.IndexByte(after, ':')
			if n < 0 {
				n = len(after)
			}
			host, after = host+after[:n], after[n:]
		}
		if after == "" {
			return host, "", nil
		}
		if !strings.HasPrefix(after, ":") {
			return "", "", fmt.Errorf("%q after the address is not a port", after)
		}
		return host, after[1:], nil
	}
	if strings.Count(rest, ":") > 1 {
		return "", "", errors.New("an IPv6 address goes in brackets: tcp://[fd00::1]:5432")
	}
	host, ports, _ = strings.Cut(rest, ":")
	if strings.HasSuffix(rest, ":") {
		return "", "", errors.New("its port is empty")
	}
	return host, ports, nil
}

func (r *Rule) parseHost(h string) error {
	switch {
	case h == "":
		return errors.New("it has no host")
	case h == "*":
		r.kind = anyHost
		return nil
	case strings.HasPrefix(h, "["):
		p, err := parsePrefix(strings.Replace(strings.TrimPrefix(h, "["), "]", "", 1))
		if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
			return fmt.Errorf("%s is not an IPv6 address or network", h)
		}
		r.kind, r.prefix = network, p
		return nil
	}
	if strings.ContainsRune(h, '/') {
		p, err := parsePrefix(h)
		if err != nil {
			return fmt.Errorf("%s is not an IPv4 network (a.b.c.d/len): %w", h, err)
		}
		if !p.Addr().Is4() {
			return fmt.Errorf("%s is not an IPv4 network (a.b.c.d/len)", h)
		}
		r.kind, r.prefix = network, p
		return nil
	}
	if p, err := parsePrefix(h); err == nil && p.Addr().Is4() {
		r.kind, r.prefix = network, p
		return nil
	}
	if sfx, ok := strings.CutPrefix(h, "*."); ok {
		if err := checkName(sfx); err != nil {
			return err
		}
		r.kind, r.host = suffix, canonical(sfx)
		return nil
	}
	if strings.Contains(h, "*") {
		return fmt.Errorf("host %q: a wildcard is a whole host (*) or the first label (*.example.com)", h)
	}
	if looksNumeric(h) {
		return fmt.Errorf("%s is not a valid IPv4 address", h)
	}
	if err := checkName(h); err != nil {
		return err
	}
	r.kind, r.host = name, canonical(h)
	return nil
}

// parsePrefix parses an address (a full-length prefix) or a network,
// which must have no bits set past its length.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Zone() != "" || p != p.Masked() {
			return netip.Prefix{}, fmt.Errorf("%s has bits set past its length (%s)", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%s is not an address", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// looksNumeric says whether h is made of digits and dots only: an
// address, never a name.
func looksNumeric(h string) bool {
	return strings.Trim(h, "0123456789.") == ""
}

// checkName checks a host name: labels of letters, digits, '-' and '_',
// 1 to 63 bytes each, 253 in all.
func checkName(h string) error {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return fmt.Errorf("host %q is not a valid name", h)
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("host %q is not a valid name: empty or over-long label", h)
		}
		for _, c := range label {
			if !nameChar(c) {
				return fmt.Errorf("host %q is not a valid name: %q", h, c)
			}
		}
	}
	return nil
}

// nameChar says whether c may be in a host name's label.
func nameChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// canonical is a name as rules compare it: lower case, no final dot.
func canonical(h string) string {
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

func parsePorts(s string) (lo, hi uint16, err error) {
	if s == "*" {
		return 1, 65535, nil
	}
	a, b, isRange := strings.Cut(s, "..")
	if lo, err = parsePort(a); err != nil {
		return 0, 0, err
	}
	if !isRange {
		return lo, lo, nil
	}
	if hi, err = parsePort(b); err != nil {
		return 0, 0, err
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("port range %s ends before it starts", s)
	}
	return lo, hi, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return uint16(n), nil
}

// String is the rule in its canonical form, which Parse reads back.
func (r Rule) String() string {
	var host string
	switch r.kind {
	case anyHost:
		host = "*"
	case name:
		host = r.host
	case suffix:
		host = "*." + r.host
	case network:
		host = r.prefix.Addr().String()
		if r.prefix.Addr().Is6() {
			host = "[" + host + "]"
		}
		if r.prefix.Bits() != r.prefix.Addr().BitLen() {
			host += "/" + strconv.Itoa(r.prefix.Bits())
		}
	}
	ports := strconv.Itoa(int(r.lo))
	switch {
	case r.lo == 1 && r.hi == 65535:
		ports = "*"
	case r.lo != r.hi:
		ports += ".." + strconv.Itoa(int(r.hi))
	}
	return "tcp://" + host + ":" + ports
}

// MayResolve says whether the rule lets a guest resolve name.
func (r Rule) MayResolve(n string) bool {
	n = canonical(n)
	switch r.kind {
	case anyHost:
		return true
	case name:
		return n == r.host
	case suffix:
		return strings.HasSuffix(n, "."+r.host)
	}
	return false
}

// Allows says whether the rule allows a connect to addr:port, where
// names are the names the task resolved to addr.
func (r Rule) Allows(addr netip.Addr, port uint16, names []string) bool {
	if port < r.lo || port > r.hi {
		return false
	}
	addr = addr.Unmap()
	switch r.kind {
	case anyHost:
		return true
	case network:
		return r.prefix.Contains(addr)
	}
	for _, n := range names {
		if r.MayResolve(n) {
			return true
		}
	}
	return false
}

// Covers says whether everything o allows, r allows too: o is within the
// ceiling r.
func (r Rule) Covers(o Rule) bool {
	if o.lo < r.lo || o.hi > r.hi {
		return false
	}
	switch r.kind {
	case anyHost:
		return true
	case network:
		return o.kind == network && r.prefix.Bits() <= o.prefix.Bits() && r.prefix.Contains(o.prefix.Addr())
	case name:
		return o.kind == name && o.host == r.host
	case suffix:
		return (o.kind == name || o.kind == suffix) && strings.HasSuffix(o.host, "."+r.host) ||
			o.kind == suffix && o.host == r.host
	}
	return false
}

// ParseRules parses a list of rules; what names the list ("outbound")
// prefixes an error, with the rule's index.
func ParseRules(what string, list []string) ([]Rule, error) {
	rules := make([]Rule, 0, len(list))
	for i, s := range list {
		r, err := Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", what, i, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// Networks are the operator's denied networks.
type Networks []netip.Prefix

// DefaultDenyNetworks is deny_networks when the operator sets none: the
// cloud metadata address.
var DefaultDenyNetworks = []string{"169.254.169.254/32"}

// namedNetworks are the words deny_networks takes.
var namedNetworks = map[string][]string{
	"loopback":   {"127.0.0.0/8", "::1/128"},
	"private":    {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"},
	"link-local": {"169.254.0.0/16", "fe80::/10"},
}

// ParseNetworks parses deny_networks: CIDR networks, addresses, and the
// words loopback, private and link-local.
func ParseNetworks(list []string) (Networks, error) {
	var n Networks
	for i, s := range list {
		if named, ok := namedNetworks[strings.ToLower(s)]; ok {
			for _, c := range named {
				n = append(n, netip.MustParsePrefix(c))
			}
			continue
		}
		p, err := parsePrefix(strings.Replace(strings.TrimPrefix(s, "["), "]", "", 1))
		if err != nil {
			return nil, fmt.Errorf("deny_networks[%d]: %q is not a network (CIDR such as 10.0.0.0/8 or fd00::/8), an address, or one of loopback, private, link-local", i, s)
		}
		n = append(n, p)
	}
	return n, nil
}

// Contains says whether addr is in one of the networks.
func (n Networks) Contains(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range n {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// CheckCeiling returns an error naming the first of the job's rules that
// none of the operator's allows, or that the operator allows nothing.
func CheckCeiling(job, operator []Rule) error {
	for i, r := range job {
		covered := false
		for _, o := range operator {
			if o.Covers(r) {
				covered = true
				break
			}
		}
		if covered {
			continue
		}
		if len(operator) == 0 {
			return fmt.Errorf("outbound[%d] %q: this node's operator allows no outbound connections (the plugin config's outbound { allow = [...] } is empty)", i, r)
		}
		return fmt.Errorf("outbound[%d] %q is beyond what this node's operator allows (plugin config outbound { allow = %q }): ask for less, or run the job where the operator allows it", i, r, operator)
	}
	return nil
}

// Policy is what one task may connect to: its job's rules within its
// operator's, minus the operator's denied networks. The zero Policy
// allows nothing.
type Policy struct {
	Job, Operator []Rule
	Deny          Networks
}

// Empty says whether the policy can allow nothing: the job asked for no
// outbound connection.
func (p *Policy) Empty() bool { return p == nil || len(p.Job) == 0 }

// MayResolve says whether the task may resolve name: a rule of its job's
// and one of its operator's allow it.
func (p *Policy) MayResolve(n string) bool {
	return p != nil && anyRule(p.Job, func(r Rule) bool { return r.MayResolve(n) }) &&
		anyRule(p.Operator, func(r Rule) bool { return r.MayResolve(n) })
}

// Allow says whether the task may connect to addr:port, names being what
// it resolved to addr; when it may not, the reason, for the task's event.
func (p *Policy) Allow(addr netip.Addr, port uint16, names []string) (bool, string) {
	addr = addr.Unmap()
	if p == nil {
		return false, "the task has no outbound rules"
	}
	if p.Deny.Contains(addr) {
		return false, fmt.Sprintf("%s is in a network this node's operator denies (deny_networks)", addr)
	}
	if !anyRule(p.Job, func(r Rule) bool { return r.Allows(addr, port, names) }) {
		return false, "no outbound rule of the task's allows it"
	}
	if !anyRule(p.Operator, func(r Rule) bool { return r.Allows(addr, port, names) }) {
		return false, "no outbound rule of this node's operator allows it"
	}
	return true, ""
}

func anyRule(rules []Rule, f func(Rule) bool) bool {
	for _, r := range rules {
		if f(r) {
			return true
		}
	}
	return false
}
