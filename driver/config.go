// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/nomad/plugins/shared/hclspec"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/oci"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/outbound"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// Engine settings of the plugin config.
const (
	EngineAuto        = executor.EngineAuto
	EngineCompiler    = executor.EngineCompiler
	EngineInterpreter = executor.EngineInterpreter
)

// configSpec is the plugin config: plugin "nomad-driver-wasm" { config { ... } }.
// Nomad decodes it with this spec and rejects fields the spec does not name.
var configSpec = hclspec.NewObject(map[string]*hclspec.Spec{
	"cache_dir": hclspec.NewAttr("cache_dir", "string", false),
	"engine": hclspec.NewDefault(
		hclspec.NewAttr("engine", "string", false),
		hclspec.NewLiteral(`"auto"`),
	),
	"warm_modules": hclspec.NewDefault(
		hclspec.NewAttr("warm_modules", "number", false),
		hclspec.NewLiteral(`4`),
	),
	"shared_executor": hclspec.NewDefault(
		hclspec.NewAttr("shared_executor", "bool", false),
		hclspec.NewLiteral(`false`),
	),
	"max_module_bytes": hclspec.NewDefault(
		hclspec.NewAttr("max_module_bytes", "number", false),
		hclspec.NewLiteral(`268435456`),
	),
	"insecure_registries": hclspec.NewAttr("insecure_registries", "list(string)", false),
	"allowed_host_paths":  hclspec.NewAttr("allowed_host_paths", "list(string)", false),
	"default_user": hclspec.NewDefault(
		hclspec.NewAttr("default_user", "string", false),
		hclspec.NewLiteral(`"nobody"`),
	),
	"allow_root": hclspec.NewDefault(
		hclspec.NewAttr("allow_root", "bool", false),
		hclspec.NewLiteral(`false`),
	),
	"registry_auth": hclspec.NewBlockList("registry_auth", hclspec.NewObject(map[string]*hclspec.Spec{
		"registry": hclspec.NewAttr("registry", "string", true),
		"username": hclspec.NewAttr("username", "string", false),
		"password": hclspec.NewAttr("password", "string", false),
	})),
	"outbound": hclspec.NewBlock("outbound", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"allow":         hclspec.NewAttr("allow", "list(string)", false),
		"deny_networks": hclspec.NewAttr("deny_networks", "list(string)", false),
	})),
	"logs": hclspec.NewBlock("logs", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"collector":     hclspec.NewAttr("collector", "string", false),
		"max_files":     hclspec.NewAttr("max_files", "number", false),
		"max_file_size": hclspec.NewAttr("max_file_size", "number", false),
	})),
})

// Who writes a task's logs (plugin config logs.collector).
const (
	// LogsByExecutor: the task's executor writes alloc/logs itself, and the
	// driver declares DisableLogCollection, so Nomad starts no logmon.
	LogsByExecutor = "executor"
	// LogsByNomad: Nomad's logmon, a process per task, as for other
	// drivers; the job's logs block sets its rotation.
	LogsByNomad = "logmon"
)

// Nomad's own defaults for a task's logs block, which the executor's
// rotation follows unless told otherwise.
const (
	defaultLogMaxFiles    = 10
	defaultLogMaxFileSize = 10 // MB
)

// LogsConfig is how the executor writes tasks' logs (plugin config), or
// one task's override of the rotation (task config).
type LogsConfig struct {
	// Collector is LogsByExecutor (default) or LogsByNomad; plugin config
	// only.
	Collector string `codec:"collector"`
	// MaxFiles is the number of files kept per stream.
	MaxFiles int `codec:"max_files"`
	// MaxFileSize is the size of a file, in MB, at which it is rotated.
	MaxFileSize int `codec:"max_file_size"`
}

// validate checks the rotation limits that are set (0: not set).
func (l LogsConfig) validate(block string) error {
	if l.MaxFiles < 0 || l.MaxFiles > 1000 {
		return fmt.Errorf("%s.max_files = %d: it must be between 1 and 1000", block, l.MaxFiles)
	}
	if l.MaxFileSize < 0 || l.MaxFileSize > 1<<20 {
		return fmt.Errorf("%s.max_file_size = %d: it is in MB and must be between 1 and %d", block, l.MaxFileSize, 1<<20)
	}
	return nil
}

// Config is the decoded plugin config.
type Config struct {
	// CacheDir holds the node's compiled-module cache. Empty means
	// DefaultCacheDir.
	CacheDir string `codec:"cache_dir"`
	// Engine is auto, compiler or interpreter.
	Engine string `codec:"engine"`
	// WarmModules is how many of the modules started on the node in the
	// last executor.RecentWindow the spare executor prepares ahead of the
	// next task; 0 turns that off.
	WarmModules int `codec:"warm_modules"`
	// Logs says who writes tasks' logs and how the executor rotates them.
	Logs LogsConfig `codec:"logs"`
	// SharedExecutor runs all the node's Wasm tasks in one executor process
	// (see sharedExecutor) instead of one each.
	SharedExecutor bool `codec:"shared_executor"`
	// MaxModuleBytes bounds the size of a module, from any source; 0 means
	// no bound.
	MaxModuleBytes int64 `codec:"max_module_bytes"`
	// InsecureRegistries are registries (host:port) that may be reached
	// over plain HTTP; any other must serve HTTPS.
	InsecureRegistries []string `codec:"insecure_registries"`
	// RegistryAuth are credentials per registry for oci:// modules.
	RegistryAuth []RegistryAuth `codec:"registry_auth"`
	// AllowedHostPaths are the host directories (and what lies under them)
	// that tasks may mount or run a module from; none by default.
	AllowedHostPaths []string `codec:"allowed_host_paths"`
	// DefaultUser is who a task that names no user runs as, when the
	// client runs as root (see user.go).
	DefaultUser string `codec:"default_user"`
	// AllowRoot lets tasks run as root (uid 0); refused by default.
	AllowRoot bool `codec:"allow_root"`
	// Outbound is the ceiling of tasks' outbound connections.
	Outbound OutboundConfig `codec:"outbound"`

	// defaultRunAs is DefaultUser resolved by Validate, nil when the client
	// does not run as root (see user.go).
	defaultRunAs *proto.RunAs
}

// spareWarm is what a spare executor does while it waits (see
// executor.Warm): prepare up to modules recent modules, make a runtime
// ahead, and take the supplementary groups of the default user, as whom
// most tasks start.
func (c *Config) spareWarm(modules int) *executor.Warm {
	w := &executor.Warm{CacheDir: c.CacheDir, Engine: c.Engine, Modules: modules}
	if u := c.defaultRunAs; u != nil && u.Uid != 0 {
		w.Groups = u.Groups
	}
	return w
}

// OutboundConfig is the plugin config's outbound block: what tasks may
// connect to at most (executor/outbound).
type OutboundConfig struct {
	// Allow is the ceiling: rules (scheme://host:ports) that every rule of
	// a task's outbound must be within. Empty: tasks connect nowhere.
	Allow []string `codec:"allow"`
	// DenyNetworks are networks no task connects to, whatever the rules:
	// CIDRs, addresses, or loopback, private, link-local. Unset: the cloud
	// metadata address (outbound.DefaultDenyNetworks).
	DenyNetworks []string `codec:"deny_networks"`

	// allow and deny are Allow and DenyNetworks parsed by Validate.
	allow []outbound.Rule
	deny  outbound.Networks
}

// validate parses the block and fills in its default.
func (o *OutboundConfig) validate() error {
	var err error
	if o.allow, err = outbound.ParseRules("outbound.allow", o.Allow); err != nil {
		return err
	}
	if len(o.DenyNetworks) == 0 {
		o.DenyNetworks = slices.Clone(outbound.DefaultDenyNetworks)
	}
	if o.deny, err = outbound.ParseNetworks(o.DenyNetworks); err != nil {
		return fmt.Errorf("outbound.%w", err)
	}
	return nil
}

// RegistryAuth is a registry's credentials: a registry_auth block of the
// plugin config (Registry set), or a task config's auth block.
type RegistryAuth struct {
	Registry string `codec:"registry"`
	Username string `codec:"username"`
	Password string `codec:"password"`
}

// GoString keeps the password out of %#v.
func (a RegistryAuth) GoString() string {
	return fmt.Sprintf("RegistryAuth{Registry: %q, Username: %q, Password: <redacted>}", a.Registry, a.Username)
}

// String keeps the password out of %v.
func (a RegistryAuth) String() string { return a.GoString() }

// ExecutorWritesLogs says whether tasks' executors write their logs (no
// logmon per task).
func (c *Config) ExecutorWritesLogs() bool { return c.Logs.Collector != LogsByNomad }

// Validate checks the plugin config and fills in defaults.
func (c *Config) Validate() error {
	switch c.Engine {
	case "":
		c.Engine = EngineAuto
	case EngineAuto, EngineCompiler, EngineInterpreter:
	default:
		return fmt.Errorf("engine %q is not one of auto, compiler, interpreter", c.Engine)
	}
	if c.WarmModules < 0 || c.WarmModules > maxWarmModules {
		return fmt.Errorf("warm_modules = %d: it must be between 0 (prepare none) and %d", c.WarmModules, maxWarmModules)
	}
	switch c.Logs.Collector {
	case "":
		c.Logs.Collector = LogsByExecutor
	case LogsByExecutor:
	case LogsByNomad:
		if c.Logs.MaxFiles != 0 || c.Logs.MaxFileSize != 0 {
			return fmt.Errorf("logs: max_files and max_file_size conflict with collector = %q: Nomad's logmon rotates as the job's logs block says; remove them, or set collector = %q", LogsByNomad, LogsByExecutor)
		}
	default:
		return fmt.Errorf("logs.collector = %q is not one of %q (the executor writes the logs) or %q (Nomad's logmon, a process per task)", c.Logs.Collector, LogsByExecutor, LogsByNomad)
	}
	if err := c.Logs.validate("logs"); err != nil {
		return err
	}
	if c.MaxModuleBytes < 0 {
		return fmt.Errorf("max_module_bytes = %d: it must be 0 (no bound) or a size in bytes", c.MaxModuleBytes)
	}
	for _, r := range c.InsecureRegistries {
		if r == "" || strings.Contains(r, "/") {
			return fmt.Errorf("insecure_registries: %q is not a registry: write host or host:port, without a scheme or path", r)
		}
	}
	for _, p := range c.AllowedHostPaths {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("allowed_host_paths: %q is not an absolute path", p)
		}
	}
	seenAuth := map[string]bool{}
	for _, a := range c.RegistryAuth {
		if a.Registry == "" || strings.Contains(a.Registry, "/") {
			return fmt.Errorf("registry_auth: registry %q is not a registry: write host or host:port, without a scheme or path", a.Registry)
		}
		if seenAuth[a.Registry] {
			return fmt.Errorf("registry_auth: two blocks for registry %q: keep one", a.Registry)
		}
		seenAuth[a.Registry] = true
	}
	if c.SharedExecutor && c.Logs.Collector == LogsByNomad {
		return fmt.Errorf("shared_executor = true conflicts with logs.collector = %q: the shared executor writes every task's logs itself; remove one of them", LogsByNomad)
	}
	if c.Logs.MaxFiles == 0 && c.Logs.Collector == LogsByExecutor {
		c.Logs.MaxFiles = defaultLogMaxFiles
	}
	if c.Logs.MaxFileSize == 0 && c.Logs.Collector == LogsByExecutor {
		c.Logs.MaxFileSize = defaultLogMaxFileSize
	}
	if c.DefaultUser == "" {
		c.DefaultUser = defaultUser
	}
	var err error
	if c.defaultRunAs, err = c.checkDefaultUser(); err != nil {
		return err
	}
	if err := c.Outbound.validate(); err != nil {
		return err
	}
	if c.CacheDir == "" {
		c.CacheDir = DefaultCacheDir()
	}
	if !filepath.IsAbs(c.CacheDir) {
		return fmt.Errorf("cache_dir %q must be an absolute path", c.CacheDir)
	}
	return nil
}

// allowedHostPath resolves host path p (symlinks followed, on the host)
// and returns what it resolves to, if that lies inside one of
// AllowedHostPaths (each resolved the same way).
func (c *Config) allowedHostPath(p string) (string, error) {
	if len(c.AllowedHostPaths) == 0 {
		return "", fmt.Errorf("this node allows tasks no host paths (the plugin config's allowed_host_paths is empty); its operator decides which host directories tasks may use")
	}
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("host path %q is not absolute", p)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("host path %s cannot be resolved on this node: %w", p, err)
	}
	for _, a := range c.AllowedHostPaths {
		ra, err := filepath.EvalSymlinks(a)
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(ra, real); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return real, nil
		}
	}
	return "", fmt.Errorf("host path %s resolves to %s, which is not inside the plugin config's allowed_host_paths (%s); its operator decides which host directories tasks may use", p, real, strings.Join(c.AllowedHostPaths, ", "))
}

// maxWarmModules bounds warm_modules: each prepared module is memory the
// idle spare executor holds.
const maxWarmModules = 64

// DefaultCacheDir is /var/cache/nomad-driver-wasm for a client running as
// root (as Nomad clients normally do), else nomad-driver-wasm in the user's
// cache directory ($XDG_CACHE_HOME or ~/.cache on Linux, ~/Library/Caches
// on macOS).
func DefaultCacheDir() string {
	if os.Geteuid() == 0 {
		return "/var/cache/nomad-driver-wasm"
	}
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "nomad-driver-wasm")
	}
	return filepath.Join(os.TempDir(), "nomad-driver-wasm-cache")
}

// taskConfigSpec is the task's config block. Nomad rejects fields the spec
// does not name before the task reaches the driver.
var taskConfigSpec = hclspec.NewObject(map[string]*hclspec.Spec{
	"module": hclspec.NewAttr("module", "string", true),
	"args":   hclspec.NewAttr("args", "list(string)", false),
	"sha256": hclspec.NewAttr("sha256", "string", false),
	"entrypoint": hclspec.NewDefault(
		hclspec.NewAttr("entrypoint", "string", false),
		hclspec.NewLiteral(`"_start"`),
	),
	"listeners": hclspec.NewAttr("listeners", "list(string)", false),
	"outbound":  hclspec.NewAttr("outbound", "list(string)", false),
	"http": hclspec.NewBlock("http", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"port": hclspec.NewAttr("port", "string", true),
		"max_concurrency": hclspec.NewDefault(
			hclspec.NewAttr("max_concurrency", "number", false),
			hclspec.NewLiteral(`100`),
		),
		"timeout": hclspec.NewDefault(
			hclspec.NewAttr("timeout", "string", false),
			hclspec.NewLiteral(`"30s"`),
		),
		"max_body_bytes": hclspec.NewDefault(
			hclspec.NewAttr("max_body_bytes", "number", false),
			hclspec.NewLiteral(`1048576`),
		),
		"metrics_port": hclspec.NewAttr("metrics_port", "string", false),
		"access_log":   hclspec.NewAttr("access_log", "bool", false),
	})),
	"logs": hclspec.NewBlock("logs", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"max_files":     hclspec.NewAttr("max_files", "number", false),
		"max_file_size": hclspec.NewAttr("max_file_size", "number", false),
	})),
	"mount": hclspec.NewBlockList("mount", hclspec.NewObject(map[string]*hclspec.Spec{
		"host_path":  hclspec.NewAttr("host_path", "string", true),
		"guest_path": hclspec.NewAttr("guest_path", "string", true),
		"readonly": hclspec.NewDefault(
			hclspec.NewAttr("readonly", "bool", false),
			hclspec.NewLiteral(`true`),
		),
	})),
	"auth": hclspec.NewBlock("auth", false, hclspec.NewObject(map[string]*hclspec.Spec{
		"username": hclspec.NewAttr("username", "string", false),
		"password": hclspec.NewAttr("password", "string", false),
	})),
})

// TaskConfig is the decoded task config. It is persisted in the task
// handle's driver state, so its codec names are a stored format: only add.
type TaskConfig struct {
	// Module is the module's path in the guest's view, e.g. local/app.wasm.
	Module string `codec:"module"`
	// Args follow argv[0], which is the module's file name.
	Args []string `codec:"args"`
	// Sha256 pins the module's content; empty means unpinned.
	Sha256 string `codec:"sha256"`
	// Entrypoint is the exported function to run.
	Entrypoint string `codec:"entrypoint"`
	// Listeners are port labels of the group's network block whose sockets
	// the guest is given (command mode).
	Listeners []string `codec:"listeners"`
	// HTTP, when its Port is set, makes the task http mode.
	HTTP HTTPConfig `codec:"http"`
	// Logs overrides the plugin config's log rotation for this task
	// (max_files, max_file_size; collector is plugin config only).
	Logs LogsConfig `codec:"logs"`
	// Auth is the registry's credentials for an oci:// module (username
	// and password; they win over the plugin config's registry_auth).
	Auth RegistryAuth `codec:"auth"`
	// Mounts are host directories mounted into the guest's view, each
	// inside the plugin config's allowed_host_paths.
	Mounts []HostMount `codec:"mount"`
	// Outbound are the rules of what the guest may connect to
	// (scheme://host:ports, executor/outbound); none: nothing.
	Outbound []string `codec:"outbound"`
}

// HostMount is a task config mount block: a host directory in the guest's
// view, read-only unless ReadOnly is false (the schema's default is true).
type HostMount struct {
	HostPath  string `codec:"host_path"`
	GuestPath string `codec:"guest_path"`
	ReadOnly  bool   `codec:"readonly"`
}

// reservedGuestPaths are the task's own directories in the guest's view.
var reservedGuestPaths = []string{"/local", "/alloc", "/secrets"}

// validateGuestPaths checks that each mount's guest path is an absolute,
// clean directory of its own: not /, not one of the task's directories, and
// neither inside nor around another mount (the guest's view resolves a
// path by the first mount that holds it).
func validateGuestPaths(paths []string, what string) error {
	taken := slices.Clone(reservedGuestPaths)
	for _, p := range paths {
		if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
			return fmt.Errorf("%s: guest_path %q must be an absolute, clean path other than /, for example /data", what, p)
		}
		for _, t := range taken {
			if p == t || strings.HasPrefix(p, t+"/") || strings.HasPrefix(t, p+"/") {
				return fmt.Errorf("%s: guest_path %q overlaps %s in the guest's view: mount at a path of its own, for example /data", what, p, t)
			}
		}
		taken = append(taken, p)
	}
	return nil
}

// HTTPConfig is the task config's http block: serve HTTP on a port and run
// a fresh instance of the module per request (CGI, as WAGI does).
type HTTPConfig struct {
	// Port is the port label to serve on.
	Port string `codec:"port"`
	// MaxConcurrency bounds the instances running at once; beyond it a
	// request waits briefly, then gets 503.
	MaxConcurrency int `codec:"max_concurrency"`
	// Timeout bounds each request (a duration); beyond it, 504.
	Timeout string `codec:"timeout"`
	// MaxBodyBytes caps a request body; beyond it, 413.
	MaxBodyBytes int64 `codec:"max_body_bytes"`
	// MetricsPort is a port label to serve Prometheus metrics on, or empty.
	MetricsPort string `codec:"metrics_port"`
	// AccessLog writes a line per request to the task's stdout log.
	AccessLog bool `codec:"access_log"`
}

// maxHTTPConcurrency bounds http.max_concurrency.
const maxHTTPConcurrency = 10000

// Validate checks the task config and fills in defaults.
func (c *TaskConfig) Validate() error {
	if c.Module == "" {
		return fmt.Errorf("module is required: set it to the module's path in the task, for example local/app.wasm")
	}
	if oci.IsReference(c.Module) {
		if _, err := oci.Parse(c.Module); err != nil {
			return err
		}
	} else if c.Auth != (RegistryAuth{}) {
		return fmt.Errorf("auth is for a module from an OCI registry (module = \"oci://…\"); module %q is a path in the task: remove auth", c.Module)
	}
	if c.Sha256 != "" {
		if b, err := hex.DecodeString(c.Sha256); err != nil || len(b) != 32 {
			return fmt.Errorf("sha256 %q is not a SHA-256 digest: it must be 64 hexadecimal characters, as printed by sha256sum", c.Sha256)
		}
	}
	if c.Entrypoint == "" {
		c.Entrypoint = "_start"
	}
	seen := map[string]string{}
	for _, l := range c.Listeners {
		if l == "" {
			return fmt.Errorf("listeners: an empty port label; name port labels of the group's network block")
		}
		env := executor.ListenerEnv(l)
		if prev, ok := seen[env]; ok {
			return fmt.Errorf("listeners: %q and %q both give the guest %s: use distinct port labels", prev, l, env)
		}
		seen[env] = l
	}
	if err := c.Logs.validate("logs"); err != nil {
		return err
	}
	if _, err := outbound.ParseRules("outbound", c.Outbound); err != nil {
		return err
	}
	guests := make([]string, 0, len(c.Mounts))
	for _, m := range c.Mounts {
		if !filepath.IsAbs(m.HostPath) {
			return fmt.Errorf("mount: host_path %q must be an absolute path on the node", m.HostPath)
		}
		guests = append(guests, m.GuestPath)
	}
	if err := validateGuestPaths(guests, "mount"); err != nil {
		return err
	}
	if c.HTTP.Port == "" {
		return nil
	}
	h := &c.HTTP
	if len(c.Listeners) > 0 {
		return fmt.Errorf("listeners and http conflict: in http mode the driver serves the port and runs an instance per request; a module that serves its own sockets takes listeners and no http block")
	}
	if c.Entrypoint != "_start" {
		return fmt.Errorf("entrypoint %q and http conflict: an http handler is a WASI command (its _start runs once per request)", c.Entrypoint)
	}
	if h.MaxConcurrency < 1 || h.MaxConcurrency > maxHTTPConcurrency {
		return fmt.Errorf("http.max_concurrency = %d: it must be between 1 and %d", h.MaxConcurrency, maxHTTPConcurrency)
	}
	if d, err := time.ParseDuration(h.Timeout); err != nil || d <= 0 {
		return fmt.Errorf("http.timeout = %q is not a positive duration such as \"10s\"", h.Timeout)
	}
	if h.MaxBodyBytes < 0 {
		return fmt.Errorf("http.max_body_bytes = %d: it must be 0 (no body) or more", h.MaxBodyBytes)
	}
	if h.MetricsPort == h.Port {
		return fmt.Errorf("http.metrics_port = %q is also http.port: serve metrics on a port label of their own", h.MetricsPort)
	}
	return nil
}
