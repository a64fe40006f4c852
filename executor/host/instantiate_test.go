// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shoenig/test/must"
	"github.com/tetratelabs/wazero/api"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/internal/wasmtest"
)

// TestInstantiateWithin: without a bound, instantiate runs on the
// caller's goroutine; within its bound, what it gives is returned. Past
// it, the caller gets errInstantiateTimeout: with a cancel, once the
// cancelled instantiation has ended, and what it made closed; without,
// at once, leaving it to run.
func TestInstantiateWithin(t *testing.T) {
	t.Parallel()
	errBroken := errors.New("broken module")
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		// hold: instantiate returns only once cancelled (with a cancel)
		// or released by the test (without).
		hold, withCancel bool
		fails            bool // instantiate fails
		want             error
		sameGoroutine    bool
	}{
		{name: "no bound", sameGoroutine: true},
		{name: "no bound, failing", fails: true, want: errBroken, sameGoroutine: true},
		{name: "within its bound", timeout: time.Hour, withCancel: true},
		{name: "failing within its bound", timeout: time.Hour, fails: true, want: errBroken},
		{name: "past its bound, cancelled", timeout: 20 * time.Millisecond, hold: true, withCancel: true, want: errInstantiateTimeout},
		{name: "past its bound, left running", timeout: 20 * time.Millisecond, hold: true, want: errInstantiateTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			made := wasmtest.Instantiate(t, context.Background(), wasmtest.Runtime(t))
			caller := goroutineID()
			cancelled, release, returned := make(chan struct{}), make(chan struct{}), make(chan struct{})
			var cancel func()
			if tc.withCancel {
				cancel = func() { close(cancelled) }
			}
			var ranOn string
			instantiate := func() (api.Module, error) {
				defer close(returned)
				ranOn = goroutineID()
				if tc.hold {
					select {
					case <-cancelled:
					case <-release:
					}
				}
				if tc.fails {
					return nil, errBroken
				}
				return made, nil
			}
			mod, err := instantiateWithin(tc.timeout, cancel, instantiate)
			select {
			case <-returned:
			default:
				must.True(t, tc.hold && !tc.withCancel, must.Sprint("instantiateWithin returned before instantiate did"))
				// Left running: it ends once released.
				close(release)
				<-returned
			}
			must.Eq(t, tc.sameGoroutine, ranOn == caller)
			if tc.want != nil {
				must.ErrorIs(t, err, tc.want)
				must.Nil(t, mod)
			} else {
				must.NoError(t, err)
				must.Eq(t, made, mod)
			}
			must.Eq(t, tc.hold && tc.withCancel, made.IsClosed(), must.Sprint("what a cancelled instantiation made must be closed, and only that"))
		})
	}
}
