// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Class says who can fix a failure. Every failure is classified once, where
// it happens; the class crosses the protocol as the gRPC status code (see
// Error.GRPCStatus), and the driver turns it into a task event and into
// Nomad's recoverable or unrecoverable error.
type Class int

const (
	// ClassNode is a failure of the node: out of memory, disk full, an
	// executor that died or cannot start, a damaged compiled-module cache.
	// Trying again (Nomad's restart policy) can succeed. It is the class of
	// any failure that was not classified otherwise.
	ClassNode Class = iota
	// ClassJob is a mistake in the job: not a WebAssembly module, a
	// component, a missing import, a module path outside the task's view,
	// bad task config. Only the job's author can fix it; restarting won't.
	ClassJob
	// ClassOperator is a problem with the node's setup that its operator
	// must fix: the plugin config, a cache_dir the client cannot write.
	ClassOperator
)

func (c Class) String() string {
	switch c {
	case ClassJob:
		return "job"
	case ClassOperator:
		return "operator"
	}
	return "node"
}

// Error is a classified failure. Its message is written for whoever the
// class names and says what to change.
type Error struct {
	Class Class
	Msg   string
	// NotFound: a path names nothing in the task's view (it does not exist
	// there, or it leads outside it), as opposed to naming a file that
	// cannot run. Only for ClassJob.
	NotFound bool
	// NotCompiled: the shared executor found no compiled code of the
	// module, which it does not compile itself: the driver compiles it
	// (Compile) and tries again. Only for ClassNode.
	NotCompiled bool
}

func (e *Error) Error() string { return e.Msg }

// JobErrorf is a ClassJob error.
func JobErrorf(format string, args ...any) *Error {
	return &Error{Class: ClassJob, Msg: fmt.Sprintf(format, args...)}
}

// NotFoundErrorf is a ClassJob error for a path that names nothing in the
// task's view.
func NotFoundErrorf(format string, args ...any) *Error {
	return &Error{Class: ClassJob, Msg: fmt.Sprintf(format, args...), NotFound: true}
}

// OperatorErrorf is a ClassOperator error.
func OperatorErrorf(format string, args ...any) *Error {
	return &Error{Class: ClassOperator, Msg: fmt.Sprintf(format, args...)}
}

// NotCompiledErrorf is a ClassNode error that says the module has no
// compiled code yet (Error.NotCompiled).
func NotCompiledErrorf(format string, args ...any) *Error {
	return &Error{Class: ClassNode, Msg: fmt.Sprintf(format, args...), NotCompiled: true}
}

// IsNotCompiled says whether err says that (Error.NotCompiled).
func IsNotCompiled(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.NotCompiled
}

// NodeErrorf is a ClassNode error.
func NodeErrorf(format string, args ...any) *Error {
	return &Error{Class: ClassNode, Msg: fmt.Sprintf(format, args...)}
}

// GRPCStatus carries the class across the protocol as a status code:
// InvalidArgument (job), NotFound (job, path names nothing),
// FailedPrecondition (operator), ResourceExhausted (node), Aborted (node,
// the module is not compiled yet: NotCompiled). gRPC servers
// send an error with this method as that status.
//
// Persisted in the wire contract: change only compatibly.
func (e *Error) GRPCStatus() *status.Status {
	code := codes.ResourceExhausted
	switch {
	case e.Class == ClassNode && e.NotCompiled:
		code = codes.Aborted
	case e.Class == ClassJob && e.NotFound:
		code = codes.NotFound
	case e.Class == ClassJob:
		code = codes.InvalidArgument
	case e.Class == ClassOperator:
		code = codes.FailedPrecondition
	}
	return status.New(code, e.Msg)
}

// ErrExecutorLost means the executor went away while a call was in flight.
var ErrExecutorLost = errors.New("the executor went away")

// fromStatus turns an error of an executor call into an *Error of the class
// its status code carries. A call that could not reach the executor, or
// that it abandoned, is ClassNode and wraps ErrExecutorLost.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch s.Code() {
	case codes.InvalidArgument:
		return &Error{Class: ClassJob, Msg: s.Message()}
	case codes.NotFound:
		return &Error{Class: ClassJob, Msg: s.Message(), NotFound: true}
	case codes.FailedPrecondition:
		return &Error{Class: ClassOperator, Msg: s.Message()}
	case codes.Aborted:
		return &Error{Class: ClassNode, Msg: s.Message(), NotCompiled: true}
	case codes.Unavailable, codes.Canceled:
		return fmt.Errorf("%w: %s", ErrExecutorLost, s.Message())
	}
	return &Error{Class: ClassNode, Msg: s.Message()}
}

// ClassOf returns the class of err: that of the *Error in its chain, else
// ClassNode.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return ClassNode
}
