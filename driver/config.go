// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/nomad/plugins/shared/hclspec"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
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
})

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
}

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
	if c.CacheDir == "" {
		c.CacheDir = DefaultCacheDir()
	}
	if !filepath.IsAbs(c.CacheDir) {
		return fmt.Errorf("cache_dir %q must be an absolute path", c.CacheDir)
	}
	return nil
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
}

// Validate checks the task config and fills in defaults.
func (c *TaskConfig) Validate() error {
	if c.Module == "" {
		return fmt.Errorf("module is required: set it to the module's path in the task, for example local/app.wasm")
	}
	if c.Sha256 != "" {
		if b, err := hex.DecodeString(c.Sha256); err != nil || len(b) != 32 {
			return fmt.Errorf("sha256 %q is not a SHA-256 digest: it must be 64 hexadecimal characters, as printed by sha256sum", c.Sha256)
		}
	}
	if c.Entrypoint == "" {
		c.Entrypoint = "_start"
	}
	return nil
}
