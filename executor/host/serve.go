// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// Serve runs the executor: the plugin binary calls it when its first
// argument is executor.Subcommand, with the arguments after it. It returns
// when the executor is done, having stopped and waited for everything it
// started.
//
// An executor starts without a task: the driver keeps one started ahead of
// the next task, so that a task's start does not wait for a process to
// start. Until Start it logs to stderr, which go-plugin forwards to the
// driver's log; from Start on, to the task's executor log file.
func Serve(args []string) {
	// The driver may die while the executor runs on; a write to the pipes
	// it left behind must fail, not kill the executor and its guest.
	signal.Ignore(syscall.SIGPIPE)
	// Before anything else, while the process has its fewest threads; an
	// executor execs nothing, so this costs it nothing but closes a way
	// back to root once it has become a task's user.
	everyThread, privsErr := forbidNewPrivileges()
	// GOMAXPROCS is set once, here: that ends the runtime's automatic
	// updates of it (Go 1.25), each of which stops the world, which a
	// guest without the per-loop check can stall for ever (see gc.go). The
	// driver moves the executor into the task's cgroups, whose cpuset may
	// have fewer CPUs, after it has started. At least two, so that the
	// protocol server runs beside a spinning guest.
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), 2))
	// The user that launched the executor, before it may become another:
	// only its processes (and root's) may use the protocol.
	launcher := uint32(os.Getuid())

	out := &logOutput{w: os.Stderr}
	logger := hclog.New(&hclog.LoggerOptions{Name: "wasm-executor", Level: hclog.Info, JSONFormat: true, Output: out})
	switch {
	case privsErr != nil:
		logger.Error("cannot set no_new_privs on the executor's threads", "error", privsErr)
	case !everyThread:
		// A build that links cgo (the tests', with -race): not the
		// executor's program, which is built without it.
		logger.Debug("no_new_privs set on one thread only: this build links cgo")
	}
	s := newServer(logger, out)
	opts, err := parseArgs(args)
	if err != nil {
		logger.Error("bad arguments", "error", err)
		return
	}
	if opts.compile != nil {
		// Not an executor: one module compiled into the cache, then exit.
		if err := compileOnly(*opts.compile, os.NewFile(3, opts.compile.name)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(executor.CompileExitCode(err))
		}
		return
	}
	if opts.shared {
		s.shared = true
		if opts.watchFD >= 0 {
			s.drivers = 1 // the launcher, until its pipe closes
		}
		if opts.sharedLog != "" {
			if err := out.toPath(opts.sharedLog); err != nil {
				logger.Warn("cannot open the shared executor's log; logging to stderr", "path", opts.sharedLog, "error", err)
			}
		}
		if opts.runAs != nil {
			// Its tasks' files come from the driver, over the handoff
			// socket, made while the executor may still make it there.
			if opts.sharedLog == "" {
				logger.Error("a shared executor that runs as a user needs its directory (-shared-log) for its handoff socket")
				out.close()
				return
			}
			socket := executor.HandoffSocket(filepath.Dir(opts.sharedLog), os.Getpid())
			if err := s.listenHandoff(socket); err != nil {
				logger.Error("cannot make the handoff socket", "path", socket, "error", err)
				out.close()
				return
			}
			// Before any task, once go-plugin has made its socket
			// (serving): the shared executor runs all its tasks as this
			// user, and writes nothing to the compiled-module cache.
			s.becomeOnServe = opts.runAs
		}
		logger.Info("shared executor starting", "pid", os.Getpid(), "uid", os.Geteuid())
	}
	if opts.watchFD >= 0 {
		s.watchLauncher(opts.watchFD)
	}
	switch {
	case s.shared:
		// The shared executor prepares nothing ahead: it keeps up to
		// -warm-modules programs of tasks that ended, for the next task
		// of the same module.
		s.kept = newKeptSet(opts.warm.Modules)
	case opts.warm.Engine != "":
		// A spare: it takes the groups of the user most tasks run as,
		// before any Start can come (a Start of another user's task sets
		// that user's, and none may change them after it), makes a
		// runtime ahead, and prepares the recent modules it is told to
		// (none when Modules is 0).
		if err := takeGroups(opts.warm.Groups); err != nil {
			logger.Warn("cannot take the default user's groups ahead; a task sets them when it starts", "groups", opts.warm.Groups, "error", err)
		}
		s.warmUp(opts.warm)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: executor.Handshake,
		Plugins:         map[string]plugin.Plugin{executor.PluginName: &executor.ServerPlugin{Impl: s, OnServe: s.serving}},
		GRPCServer:      protocolServer(launcher, logger),
		Logger:          logger,
	})
	s.close()
	logger.Debug("executor exiting")
	out.close()
}

// options are the executor's arguments.
type options struct {
	watchFD   int // -1: none
	warm      executor.Warm
	shared    bool
	sharedLog string
	runAs     *proto.RunAs
	// compile, when set, makes the process compile one module and exit
	// (executor.CompileFlag).
	compile *compileOptions
}

// compileOptions are the compile process's arguments (executor.Compile).
type compileOptions struct {
	cacheDir, engine, name string
	interruptible          bool
	cgroups                []string
}

// stringsFlag is a flag that may be given more than once.
type stringsFlag []string

func (f *stringsFlag) String() string     { return strings.Join(*f, ",") }
func (f *stringsFlag) Set(v string) error { *f = append(*f, v); return nil }

// parseArgs reads the arguments the driver launches an executor with
// (executor.Launch).
func parseArgs(args []string) (options, error) {
	fs := flag.NewFlagSet(executor.Subcommand, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := options{}
	fs.IntVar(&o.watchFD, strings.TrimPrefix(executor.WatchFDFlag, "-"), -1, "")
	fs.StringVar(&o.warm.CacheDir, strings.TrimPrefix(executor.WarmCacheDirFlag, "-"), "", "")
	fs.StringVar(&o.warm.Engine, strings.TrimPrefix(executor.WarmEngineFlag, "-"), "", "")
	fs.IntVar(&o.warm.Modules, strings.TrimPrefix(executor.WarmModulesFlag, "-"), 0, "")
	fs.BoolVar(&o.shared, strings.TrimPrefix(executor.SharedFlag, "-"), false, "")
	fs.StringVar(&o.sharedLog, strings.TrimPrefix(executor.SharedLogFlag, "-"), "", "")
	var compile bool
	var co compileOptions
	var cgroups stringsFlag
	fs.BoolVar(&compile, strings.TrimPrefix(executor.CompileFlag, "-"), false, "")
	fs.StringVar(&co.cacheDir, strings.TrimPrefix(executor.CompileCacheDirFlag, "-"), "", "")
	fs.StringVar(&co.engine, strings.TrimPrefix(executor.CompileEngineFlag, "-"), "", "")
	fs.StringVar(&co.name, strings.TrimPrefix(executor.CompileNameFlag, "-"), "", "")
	fs.BoolVar(&co.interruptible, strings.TrimPrefix(executor.CompileInterruptibleFlag, "-"), false, "")
	fs.Var(&cgroups, strings.TrimPrefix(executor.CompileCgroupFlag, "-"), "")
	var digests, runAs, groups string
	fs.StringVar(&runAs, strings.TrimPrefix(executor.RunAsFlag, "-"), "", "")
	fs.StringVar(&digests, strings.TrimPrefix(executor.WarmDigestsFlag, "-"), "", "")
	fs.StringVar(&groups, strings.TrimPrefix(executor.WarmGroupsFlag, "-"), "", "")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if compile {
		co.cgroups = cgroups
		o.compile = &co
	}
	if digests != "" {
		o.warm.Digests = strings.Split(digests, ",")
	}
	if groups != "" {
		if o.warm.Engine == "" || o.shared {
			return o, fmt.Errorf("%s is for a spare executor (%s), not %s", executor.WarmGroupsFlag, executor.WarmEngineFlag, executor.SharedFlag)
		}
		for g := range strings.SplitSeq(groups, ",") {
			n, err := strconv.ParseUint(g, 10, 32)
			if err != nil {
				return o, fmt.Errorf("%s=%s: %q is not a group ID", executor.WarmGroupsFlag, groups, g)
			}
			o.warm.Groups = append(o.warm.Groups, uint32(n))
		}
	}
	if runAs != "" {
		var err error
		if o.runAs, err = executor.ParseRunAs(runAs); err != nil {
			return o, err
		}
		if !o.shared {
			return o, fmt.Errorf("%s is for a shared executor (%s); an executor of its own is told its task's user in Start", executor.RunAsFlag, executor.SharedFlag)
		}
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.watchFD != -1 && o.watchFD < 3 {
		return o, fmt.Errorf("%s needs a descriptor number of 3 or more, not %d", executor.WatchFDFlag, o.watchFD)
	}
	return o, nil
}

// logOutput is the executor log's destination, switched once from stderr
// to the task's log file.
type logOutput struct {
	mu   sync.Mutex
	w    io.Writer
	file *os.File
}

func (o *logOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.w.Write(p)
}

// toPath switches to the file at path, which it opens.
func (o *logOutput) toPath(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	o.toFile(f)
	return nil
}

// toFile switches to f, which it owns from then on.
func (o *logOutput) toFile(f *os.File) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file != nil {
		_ = o.file.Close()
	}
	o.w, o.file = f, f
}

func (o *logOutput) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file != nil {
		_ = o.file.Close()
	}
}
