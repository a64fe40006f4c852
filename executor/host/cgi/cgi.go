// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package cgi is the CGI (RFC 3875) of the HTTP trigger, as WAGI speaks
// it: the request goes into a guest's environment (Env) and on its stdin;
// the guest writes header lines, a blank line and the body on its stdout
// (ParseResponse).
//
// It turns a request into variables and a guest's output into a response,
// and nothing more: it must not run guests, know instances or wazero, or
// write to the client; the trigger in its parent package does. It uses
// the standard library and x/net's httpguts (the header checks net/http
// itself makes) only.
package cgi

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Limits on what a module may write as its response.
const (
	maxResponseHeaderBytes = 64 << 10
	maxResponseHeaders     = 100
)

// Env is the CGI/WAGI environment of request r, whose body has n bytes,
// served on serverPort by serverSoftware (SERVER_SOFTWARE): the server's
// variables, then the request's headers as HTTP_* sorted by name, as
// "NAME=value" entries. Built per request, so as a list rather than a map,
// its entries written into one buffer that they are then cut from: two
// allocations per request, not two per variable. A variable whose value a
// guest cannot take (a NUL, from a path's %00) is left out; of two headers
// with one HTTP_* name ("X-A" and "X_A"), the first in sorted order stays.
func Env(r *http.Request, n int, serverPort, serverSoftware string) []string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	remote, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		remote = r.RemoteAddr
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	uri := r.URL.RequestURI()
	var ends [32]int
	b := envBuilder{buf: make([]byte, 0, 512+len(uri)*3+64*len(r.Header)), ends: ends[:0]}
	// The names are the server's or a header's (a token: never empty,
	// never '=' or NUL); only a value can be unfit for a guest.
	b.add("GATEWAY_INTERFACE", "CGI/1.1")
	b.add("SERVER_SOFTWARE", serverSoftware)
	b.add("SERVER_PROTOCOL", r.Proto)
	b.add("SERVER_NAME", host)
	b.add("SERVER_PORT", serverPort)
	b.add("REQUEST_METHOD", r.Method)
	b.add("REQUEST_URI", uri)
	b.add("SCRIPT_NAME", "")
	b.add("PATH_INFO", r.URL.Path)
	b.add("X_RAW_PATH_INFO", r.URL.EscapedPath())
	b.add("QUERY_STRING", r.URL.RawQuery)
	b.add("REMOTE_ADDR", remote)
	b.add("REMOTE_HOST", remote)
	b.add("X_MATCHED_ROUTE", "/...")
	b.add("X_FULL_URL", scheme, "://", r.Host, uri)
	b.buf = strconv.AppendInt(b.begin("CONTENT_LENGTH"), int64(n), 10)
	b.end(true)
	if ct := r.Header.Get("Content-Type"); ct != "" {
		b.add("CONTENT_TYPE", ct)
	}
	headers := len(b.ends)
	for k, v := range r.Header {
		switch k {
		case "Content-Type", "Content-Length", "Proxy":
			// Content-* are above; HTTP_PROXY would be taken for a proxy
			// setting (httpoxy).
			continue
		}
		b.header(k, v)
	}
	if r.Host != "" {
		b.add("HTTP_HOST", r.Host)
	}
	env := b.environ()
	// Sorted, entries of one name are side by side: the first stays.
	slices.Sort(env[headers:])
	return slices.CompactFunc(env, func(a, b string) bool { return envName(a) == envName(b) })
}

// envName is the name of an entry "NAME=value".
func envName(kv string) string {
	k, _, _ := strings.Cut(kv, "=")
	return k
}

// envBuilder writes "NAME=value" entries one after another into buf; ends
// holds where each ends.
type envBuilder struct {
	buf  []byte
	ends []int
}

// begin starts an entry: its name and '='.
func (b *envBuilder) begin(name string) []byte {
	b.buf = append(append(b.buf, name...), '=')
	return b.buf
}

// end ends the entry begun last, or drops it when keep is false.
func (b *envBuilder) end(keep bool) {
	if keep {
		b.ends = append(b.ends, len(b.buf))
	} else if n := len(b.ends); n > 0 {
		b.buf = b.buf[:b.ends[n-1]]
	} else {
		b.buf = b.buf[:0]
	}
}

// add adds name with the value made of parts, unless the value holds a NUL.
func (b *envBuilder) add(name string, parts ...string) {
	b.begin(name)
	nul := false
	for _, p := range parts {
		nul = nul || strings.IndexByte(p, 0) >= 0
		b.buf = append(b.buf, p...)
	}
	b.end(!nul)
}

// header adds the header k with values v as HTTP_K ('-' becoming '_',
// letters upper case), its values joined by ", ".
func (b *envBuilder) header(k string, v []string) {
	b.buf = append(b.buf, "HTTP_"...)
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '-':
			c = '_'
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		b.buf = append(b.buf, c)
	}
	b.buf = append(b.buf, '=')
	nul := false
	for i, s := range v {
		if i > 0 {
			b.buf = append(b.buf, ", "...)
		}
		nul = nul || strings.IndexByte(s, 0) >= 0
		b.buf = append(b.buf, s...)
	}
	b.end(!nul)
}

// environ cuts the entries from one string of the whole buffer.
func (b *envBuilder) environ() []string {
	all := string(b.buf)
	env := make([]string, len(b.ends))
	start := 0
	for i, end := range b.ends {
		env[i] = all[start:end]
		start = end
	}
	return env
}

// Response is a module's response, parsed.
type Response struct {
	// Status is the HTTP status: 200 to 599.
	Status int
	// Header holds the module's headers, canonical, without Status and
	// without the headers that frame a response (Content-Length,
	// Transfer-Encoding, Connection and the like): the server frames the
	// response itself.
	Header http.Header
	// Body is what follows the blank line: the tail of the module's
	// output, not a copy.
	Body []byte
}

// errResponse marks a response the module got wrong: the client gets 502.
var errResponse = errors.New("malformed CGI response")

// ParseResponse parses what a module wrote on its stdout: header lines
// ("Name: value", ending in LF or CRLF), a blank line, the body. A Status
// header ("404 Not Found") sets the status; a Location header without one
// makes it 302; else it is 200. A response with neither Content-Type,
// Location nor Status is refused, as are invalid names, values and
// statuses, more than maxResponseHeaders (100) headers or
// maxResponseHeaderBytes (64 KiB) of them. Errors wrap errResponse and say what is wrong, for the task's
// stderr log.
func ParseResponse(out []byte) (*Response, error) {
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: the module wrote nothing on stdout; a response is header lines (at least Content-Type), a blank line and the body", errResponse)
	}
	resp := &Response{Header: http.Header{}}
	rest := out
	for n := 0; ; n++ {
		i := bytes.IndexByte(rest, '\n')
		end := len(out) - len(rest) + i // where this line ends in out
		if i < 0 {
			end = len(out)
		}
		if end > maxResponseHeaderBytes {
			return nil, fmt.Errorf("%w: no blank line within the first %d KiB: the headers are too long, or the module did not end them with a blank line", errResponse, maxResponseHeaderBytes>>10)
		}
		if i < 0 {
			return nil, fmt.Errorf("%w: no blank line after the headers: write header lines, then an empty line, then the body", errResponse)
		}
		line := rest[:i]
		rest = rest[i+1:]
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		if n == maxResponseHeaders {
			return nil, fmt.Errorf("%w: more than %d header lines", errResponse, maxResponseHeaders)
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return nil, fmt.Errorf("%w: header line %q is not \"Name: value\" (a body must follow a blank line)", errResponse, truncate(line))
		}
		k, v := string(name), strings.TrimSpace(string(value))
		if !httpguts.ValidHeaderFieldName(k) {
			return nil, fmt.Errorf("%w: %q is not a valid header name", errResponse, truncate(name))
		}
		if !httpguts.ValidHeaderFieldValue(v) {
			return nil, fmt.Errorf("%w: header %s has an invalid value", errResponse, k)
		}
		k = http.CanonicalHeaderKey(k)
		switch k {
		case "Status":
			if resp.Status != 0 {
				return nil, fmt.Errorf("%w: more than one Status header", errResponse)
			}
			code, _, _ := strings.Cut(v, " ")
			s, err := strconv.Atoi(code)
			if err != nil || len(code) != 3 || s < 200 || s > 599 {
				return nil, fmt.Errorf("%w: Status %q is not a final HTTP status: write e.g. \"Status: 404 Not Found\" (200 to 599)", errResponse, truncate([]byte(v)))
			}
			resp.Status = s
			continue
		case "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Upgrade", "Trailer", "Te":
			// The server frames the response itself.
			continue
		}
		resp.Header.Add(k, v)
	}
	if resp.Status == 0 {
		switch {
		case resp.Header.Get("Location") != "":
			resp.Status = http.StatusFound
		case resp.Header.Get("Content-Type") != "":
			resp.Status = http.StatusOK
		default:
			return nil, fmt.Errorf("%w: no Content-Type, Location or Status header", errResponse)
		}
	}
	resp.Body = rest
	return resp, nil
}

// truncate shortens b for an error message.
func truncate(b []byte) string {
	const n = 64
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
