// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"errors"
	"fmt"
	"testing"

	"github.com/shoenig/test/must"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestErrorClassCrossesTheProtocol: a classified error sent by the
// executor arrives at the driver with its class and message.
func TestErrorClassCrossesTheProtocol(t *testing.T) {
	t.Parallel()
	for _, e := range []*Error{
		JobErrorf("module %s is not wasm", "x"),
		NotFoundErrorf("module %s does not exist", "y"),
		OperatorErrorf("cache_dir is not writable"),
		NodeErrorf("out of memory"),
		NotCompiledErrorf("module %s has no compiled code", "z"),
	} {
		// What a gRPC server sends for a handler's error, and what its
		// client receives.
		sent := status.Convert(e).Err()
		got := fromStatus(sent)
		var back *Error
		must.True(t, errors.As(got, &back), must.Sprint(got))
		must.Eq(t, e.Class, back.Class)
		must.Eq(t, e.NotFound, back.NotFound)
		must.Eq(t, e.NotCompiled, back.NotCompiled)
		must.Eq(t, e.NotCompiled, IsNotCompiled(fmt.Errorf("wrapped: %w", got)))
		must.Eq(t, e.Msg, back.Msg)
		must.Eq(t, e.Class, ClassOf(fmt.Errorf("wrapped: %w", got)))
	}
}

func TestUnclassifiedFailuresAreTheNodes(t *testing.T) {
	t.Parallel()
	must.Eq(t, ClassNode, ClassOf(errors.New("anything")))
	lost := fromStatus(status.Error(codes.Unavailable, "connection refused"))
	must.ErrorIs(t, lost, ErrExecutorLost)
	must.Eq(t, ClassNode, ClassOf(lost))
	must.Eq(t, ClassNode, ClassOf(fromStatus(status.Error(codes.Internal, "bug"))))
}
