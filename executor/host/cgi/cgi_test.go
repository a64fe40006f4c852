// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package cgi

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/shoenig/test/must"
)

func TestParseCGIResponse(t *testing.T) {
	cases := []struct {
		name   string
		out    string
		status int
		header map[string]string
		body   string
		err    string
	}{
		{name: "document", out: "Content-Type: text/plain\n\nhello\n", status: 200, header: map[string]string{"Content-Type": "text/plain"}, body: "hello\n"},
		{name: "crlf", out: "Content-Type: text/html\r\nX-A: b\r\n\r\n<p>", status: 200, header: map[string]string{"Content-Type": "text/html", "X-A": "b"}, body: "<p>"},
		{name: "status", out: "Status: 404 Not Found\nContent-Type: text/plain\n\nnope", status: 404, body: "nope"},
		{name: "status without reason", out: "Status: 201\n\n", status: 201},
		{name: "redirect", out: "Location: /x\n\n", status: 302, header: map[string]string{"Location": "/x"}},
		{name: "redirect with status", out: "Status: 301 Moved\nLocation: /y\n\n", status: 301},
		{name: "empty body", out: "Content-Type: text/plain\n\n", status: 200},
		{name: "body holds blank lines", out: "Content-Type: a/b\n\nx\n\ny\n", status: 200, body: "x\n\ny\n"},
		{name: "lower-case names", out: "content-type: a/b\nstatus: 418 teapot\n\n", status: 418, header: map[string]string{"Content-Type": "a/b"}},
		{name: "framing headers are the server's", out: "Content-Type: a/b\nContent-Length: 99\nConnection: close\nTransfer-Encoding: chunked\n\nab", status: 200, body: "ab",
			header: map[string]string{"Content-Length": "", "Connection": "", "Transfer-Encoding": ""}},
		{name: "binary body", out: "Content-Type: application/octet-stream\n\n\x00\x01\xff", status: 200, body: "\x00\x01\xff"},

		{name: "nothing", out: "", err: "wrote nothing"},
		{name: "no blank line", out: "Content-Type: text/plain\nhello", err: "no blank line"},
		{name: "body only", out: "just a body with no blank line", err: "no blank line"},
		{name: "body only, ends in newline", out: "just a body\n", err: "not \"Name: value\""},
		{name: "no content type", out: "X-A: b\n\nbody", err: "no Content-Type, Location or Status"},
		{name: "invalid status", out: "Status: abc\n\n", err: "not a final HTTP status"},
		{name: "informational status", out: "Status: 100 Continue\n\n", err: "not a final HTTP status"},
		{name: "status out of range", out: "Status: 600 Nope\n\n", err: "not a final HTTP status"},
		{name: "four-digit status", out: "Status: 2000\n\n", err: "not a final HTTP status"},
		{name: "two statuses", out: "Status: 200 OK\nStatus: 404 No\n\n", err: "more than one Status"},
		{name: "invalid name", out: "Bad Name: x\n\n", err: "not a valid header name"},
		{name: "invalid value", out: "Content-Type: a\x00b\n\n", err: "invalid value"},
		{name: "garbage", out: string(garbage()), err: "malformed"},
		{name: "huge header", out: "X-Big: " + strings.Repeat("a", 200000) + "\n\nbody", err: "within the first 64 KiB"},
		{name: "huge header, no newline", out: "X-Big: " + strings.Repeat("a", 200000), err: "within the first 64 KiB"},
		{name: "too many headers", out: strings.Repeat("X-A: b\n", 101) + "Content-Type: a/b\n\n", err: "more than 100 header lines"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := ParseResponse([]byte(c.out))
			if c.err != "" {
				must.Error(t, err)
				must.True(t, errors.Is(err, errResponse))
				must.StrContains(t, err.Error(), c.err)
				return
			}
			must.NoError(t, err)
			must.Eq(t, c.status, resp.Status)
			must.Eq(t, c.body, string(resp.Body))
			for k, v := range c.header {
				must.Eq(t, v, resp.Header.Get(k), must.Sprintf("header %s", k))
			}
			must.SliceEmpty(t, resp.Header.Values("Status"))
		})
	}
}

func garbage() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// FuzzParseCGIResponse: whatever a module writes, the parser returns a
// response or an error wrapping errResponse, never panics, and a response
// it returns is one net/http can send.
func FuzzParseCGIResponse(f *testing.F) {
	for _, seed := range []string{
		"Content-Type: text/plain\n\nhello\n",
		"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope",
		"Location: /x\n\n",
		"Status: abc\n\n",
		"just a body",
		"X-A: b\n\n",
		"",
		"\n\n",
		":\n\n",
		"Content-Type: a\x00b\n\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		resp, err := ParseResponse(out)
		if err != nil {
			if !errors.Is(err, errResponse) {
				t.Fatalf("error does not wrap errResponse: %v", err)
			}
			return
		}
		if resp.Status < 200 || resp.Status > 599 {
			t.Fatalf("status %d", resp.Status)
		}
		if !bytes.HasSuffix(out, resp.Body) {
			t.Fatalf("body is not the tail of the output")
		}
		w := httptest.NewRecorder()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.Status)
		_, _ = w.Write(resp.Body)
		if w.Code != resp.Status {
			t.Fatalf("recorded %d, want %d", w.Code, resp.Status)
		}
	})
}

func TestCGIEnv(t *testing.T) {
	r := httptest.NewRequest("POST", "http://example.com:8080/a/b%20c?x=1&y=2", strings.NewReader("body"))
	r.RemoteAddr = "192.0.2.7:5555"
	r.Header.Set("Content-Type", "text/plain")
	r.Header.Set("X-Trace-Id", "abc")
	r.Header.Add("Accept", "a")
	r.Header.Add("Accept", "b")
	r.Header.Set("Proxy", "http://evil")
	r.Header.Set("X-Dup", "dash")
	r.Header["X_dup"] = []string{"underscore"}
	list := Env(r, 4, "8080", "nomad-driver-wasm/test")
	env := map[string]string{}
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		_, twice := env[k]
		must.False(t, twice, must.Sprintf("%s is in the environment twice: %q", k, list))
		env[k] = v
	}
	// Of two headers with one name, the first in sorted order.
	must.Eq(t, "dash", env["HTTP_X_DUP"])
	for k, v := range map[string]string{
		"REQUEST_METHOD":    "POST",
		"PATH_INFO":         "/a/b c",
		"X_RAW_PATH_INFO":   "/a/b%20c",
		"QUERY_STRING":      "x=1&y=2",
		"CONTENT_TYPE":      "text/plain",
		"CONTENT_LENGTH":    "4",
		"SERVER_NAME":       "example.com",
		"SERVER_PORT":       "8080",
		"SERVER_PROTOCOL":   "HTTP/1.1",
		"GATEWAY_INTERFACE": "CGI/1.1",
		"REMOTE_ADDR":       "192.0.2.7",
		"HTTP_X_TRACE_ID":   "abc",
		"HTTP_ACCEPT":       "a, b",
		"HTTP_HOST":         "example.com:8080",
		"X_FULL_URL":        "http://example.com:8080/a/b%20c?x=1&y=2",
		"REQUEST_URI":       "/a/b%20c?x=1&y=2",
		"SERVER_SOFTWARE":   "nomad-driver-wasm/test",
	} {
		must.Eq(t, v, env[k], must.Sprintf("%s", k))
	}
	_, proxy := env["HTTP_PROXY"]
	must.False(t, proxy)
	_, ct := env["HTTP_CONTENT_TYPE"]
	must.False(t, ct)
	_ = http.MethodGet

	// A NUL (from %00 in the path) cannot reach a guest: the variable is
	// left out, the others stay.
	r = httptest.NewRequest("GET", "http://example.com/a%00b", nil)
	env = map[string]string{}
	for _, kv := range Env(r, 0, "80", "nomad-driver-wasm/test") {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	_, path := env["PATH_INFO"]
	must.False(t, path)
	must.Eq(t, "/a%00b", env["X_RAW_PATH_INFO"])
}
