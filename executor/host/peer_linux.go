// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// protocolServer is the executor's gRPC server, which answers only
// processes of the user that launched it (launcherOnly).
func protocolServer(launcher uint32, logger hclog.Logger) func([]grpc.ServerOption) *grpc.Server {
	return func(opts []grpc.ServerOption) *grpc.Server {
		return grpc.NewServer(append(opts, grpc.Creds(launcherOnly{uid: launcher, logger: logger}))...)
	}
}

// launcherOnly are the transport credentials of the executor's protocol
// server: a connection is served only if the process that made it runs as
// root or as the user that launched the executor (the driver: root, as
// Nomad runs it), which the kernel tells (SO_PEERCRED); any other is
// closed before a byte of it is read.
//
// go-plugin makes the server's Unix socket when it starts serving, owned
// by the executor's user at that time: root for an executor of its own,
// which gives up root later; but the shared executor serves as its tasks'
// user (nobody) from the start, and any process of that user (a task of
// another driver run as nobody, say) could otherwise connect, start tasks
// and run commands in the shared executor's tasks.
type launcherOnly struct {
	uid    uint32
	logger hclog.Logger
}

var errNotUnix = errors.New("the executor serves its protocol on a Unix socket only")

// ServerHandshake admits conn, or refuses it: credentials.TransportCredentials.
func (l launcherOnly) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return nil, nil, errNotUnix
	}
	cred, err := peerCredentials(uc)
	if err != nil {
		return nil, nil, fmt.Errorf("read the credentials of a protocol connection: %w", err)
	}
	if cred.Uid != 0 && cred.Uid != l.uid {
		l.logger.Warn("refused a protocol connection from a process that is neither root nor the executor's launcher", "uid", cred.Uid, "pid", cred.Pid, "launcher_uid", l.uid)
		return nil, nil, fmt.Errorf("uid %d (pid %d) may not use the executor's protocol", cred.Uid, cred.Pid)
	}
	return conn, peerAuthInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
}

// ClientHandshake is not used: the executor dials nothing with these.
func (launcherOnly) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("launcherOnly credentials are the executor server's only")
}

func (launcherOnly) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "peercred"}
}

func (l launcherOnly) Clone() credentials.TransportCredentials { return l }

//nolint:staticcheck // part of the interface; deprecated and unused by gRPC
func (launcherOnly) OverrideServerName(string) error { return nil }

// peerAuthInfo says that a connection was admitted by its peer's
// credentials, not by any cryptography.
type peerAuthInfo struct {
	credentials.CommonAuthInfo
}

func (peerAuthInfo) AuthType() string { return "peercred" }
