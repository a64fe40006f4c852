// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"errors"
	"syscall"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// errno is a WASI preview 1 error number, as the functions return it.
type errno = uint32

// The WASI preview 1 errno values this host returns.
const (
	errnoSuccess     = 0
	errno2big        = 1
	errnoAcces       = 2
	errnoAddrinuse   = 3
	errnoAgain       = 6
	errnoBadf        = 8
	errnoConnaborted = 13
	errnoConnrefused = 14
	errnoConnreset   = 15
	errnoExist       = 20
	errnoFault       = 21
	errnoFbig        = 22
	errnoIntr        = 27
	errnoInval       = 28
	errnoIO          = 29
	errnoIsdir       = 31
	errnoLoop        = 32
	errnoMfile       = 33
	errnoMlink       = 34
	errnoNametoolong = 37
	errnoNoent       = 44
	errnoNomem       = 48
	errnoNospc       = 51
	errnoNosys       = 52
	errnoNotconn     = 53
	errnoNotdir      = 54
	errnoNotempty    = 55
	errnoNotsock     = 57
	errnoNotsup      = 58
	errnoNotty       = 59
	errnoOverflow    = 61
	errnoPerm        = 63
	errnoPipe        = 64
	errnoRange       = 68
	errnoRofs        = 69
	errnoSpipe       = 70
	errnoXdev        = 75
	errnoNotcapable  = 76
)

// fromSys maps wazero's filesystem errno (what the confined filesystem
// returns) to WASI's.
func fromSys(e experimentalsys.Errno) errno {
	switch e {
	case 0:
		return errnoSuccess
	case experimentalsys.EACCES:
		return errnoAcces
	case experimentalsys.EAGAIN:
		return errnoAgain
	case experimentalsys.EBADF:
		return errnoBadf
	case experimentalsys.EEXIST:
		return errnoExist
	case experimentalsys.EFAULT:
		return errnoFault
	case experimentalsys.EINTR:
		return errnoIntr
	case experimentalsys.EINVAL:
		return errnoInval
	case experimentalsys.EISDIR:
		return errnoIsdir
	case experimentalsys.ELOOP:
		return errnoLoop
	case experimentalsys.ENAMETOOLONG:
		return errnoNametoolong
	case experimentalsys.ENOENT:
		return errnoNoent
	case experimentalsys.ENOSYS:
		return errnoNosys
	case experimentalsys.ENOTDIR:
		return errnoNotdir
	case experimentalsys.ERANGE:
		return errnoRange
	case experimentalsys.ENOTEMPTY:
		return errnoNotempty
	case experimentalsys.ENOTSOCK:
		return errnoNotsock
	case experimentalsys.ENOTSUP:
		return errnoNotsup
	case experimentalsys.EPERM:
		return errnoPerm
	case experimentalsys.EROFS:
		return errnoRofs
	default:
		return errnoIO
	}
}

// fromErr maps an error of a system call (sockets, the host's own calls
// on descriptors) to WASI's errno.
func fromErr(err error) errno {
	if err == nil {
		return errnoSuccess
	}
	var e syscall.Errno
	if !errors.As(err, &e) {
		return fromSys(experimentalsys.UnwrapOSError(err))
	}
	switch e {
	case syscall.E2BIG:
		return errno2big
	case syscall.EADDRINUSE:
		return errnoAddrinuse
	case syscall.EADDRNOTAVAIL:
		return 4
	case syscall.EAFNOSUPPORT:
		return 5
	case syscall.EALREADY:
		return 7
	case syscall.EDESTADDRREQ:
		return 17
	case syscall.EHOSTUNREACH:
		return 23
	case syscall.EINPROGRESS:
		return 26
	case syscall.EISCONN:
		return 30
	case syscall.EMSGSIZE:
		return 35
	case syscall.ENETDOWN:
		return 38
	case syscall.ENETRESET:
		return 39
	case syscall.ENETUNREACH:
		return 40
	case syscall.ENOPROTOOPT:
		return 50
	case syscall.EPROTONOSUPPORT:
		return 66
	case syscall.EPROTOTYPE:
		return 67
	case syscall.ETIMEDOUT:
		return 73
	case syscall.ECONNABORTED:
		return errnoConnaborted
	case syscall.ECONNREFUSED:
		return errnoConnrefused
	case syscall.ECONNRESET:
		return errnoConnreset
	case syscall.EFBIG:
		return errnoFbig
	case syscall.EMFILE, syscall.ENFILE:
		return errnoMfile
	case syscall.EMLINK:
		return errnoMlink
	case syscall.ENOMEM, syscall.ENOBUFS:
		return errnoNomem
	case syscall.ENOSPC:
		return errnoNospc
	case syscall.ENOTCONN:
		return errnoNotconn
	case syscall.ENOTTY:
		return errnoNotty
	case syscall.EOVERFLOW:
		return errnoOverflow
	case syscall.EPIPE:
		return errnoPipe
	case syscall.ESPIPE:
		return errnoSpipe
	case syscall.EXDEV:
		return errnoXdev
	}
	return fromSys(experimentalsys.UnwrapOSError(e))
}
