// Package ruleset builds the tap's rules.Set from the configuration: the
// endpoint catalogue (an updated copy on disk, else the embedded snapshot),
// inline user rules and user rule files, and reloads it when those files
// change. It keeps YAML and file watching out of the rules package.
package ruleset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/rules"
)

// CataloguePath is where an updated catalogue is read from and where
// `m365tap rules update` writes: rules.catalogue, else endpoints.json in the
// user's config directory.
func CataloguePath(cfg *config.Config) string {
	if cfg.Rules.Catalogue != "" {
		return cfg.Rules.Catalogue
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "m365tap", "endpoints.json")
}

// File is the YAML layout of a user rule file.
type File struct {
	Rules []config.UserRule `yaml:"rules"`
}

// Load compiles the rule set the configuration describes, and returns the
// catalogue it was built from.
func Load(cfg *config.Config) (*rules.Set, *rules.Catalogue, error) {
	cat, err := Catalogue(cfg)
	if err != nil {
		return nil, nil, err
	}
	specs := toSpecs(cfg.Rules.User)
	for _, path := range cfg.Rules.Files {
		fs, err := readFile(path)
		if err != nil {
			return nil, nil, err
		}
		specs = append(specs, fs...)
	}
	specs = append(specs, pcProbes()...)
	set, err := rules.Compile(cat, specs)
	if err != nil {
		return nil, nil, fmt.Errorf("rules: %w", err)
	}
	return set, cat, nil
}

// Catalogue returns the updated catalogue on disk if there is one, else the
// embedded snapshot. A file that exists but does not parse is an error: the
// tap must not silently fall back to older data than the user installed.
func Catalogue(cfg *config.Config) (*rules.Catalogue, error) {
	path := CataloguePath(cfg)
	if path != "" {
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			cat, perr := rules.ParseCatalogue(data)
			if perr != nil {
				return nil, fmt.Errorf("rules: catalogue %s: %w", path, perr)
			}
			return cat, nil
		case !errors.Is(err, os.ErrNotExist) || cfg.Rules.Catalogue != "":
			if !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("rules: catalogue: %w", err)
			}
		}
	}
	return rules.EmbeddedCatalogue()
}

func readFile(path string) ([]rules.Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("rules: %s: %w", path, err)
	}
	return toSpecs(f.Rules), nil
}

func toSpecs(list []config.UserRule) []rules.Spec {
	specs := make([]rules.Spec, 0, len(list))
	for _, u := range list {
		specs = append(specs, rules.Spec{
			ID:           u.ID,
			ServiceArea:  u.ServiceArea,
			URLs:         u.URLs,
			TCPPorts:     u.TCPPorts,
			Required:     u.Required,
			ExpressRoute: u.ExpressRoute,
			Category:     u.Category,
			Notes:        u.Notes,
			Probe:        u.Probe,
			ProbePath:    u.ProbePath,
			ProbeContent: u.ProbeContent,
		})
	}
	return specs
}

// Watch reloads the rule set into dst when a rule file or the catalogue
// changes on disk, until ctx ends. A reload that fails keeps the old rules
// and logs rules_reload_failed with the reason; connections are never
// dropped, because each exchange reads the set once at its start.
func Watch(ctx context.Context, cfg *config.Config, dst *atomic.Pointer[rules.Set], log *zap.Logger) {
	paths := append([]string(nil), cfg.Rules.Files...)
	if p := CataloguePath(cfg); p != "" {
		paths = append(paths, p)
	}
	if len(paths) == 0 {
		return
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.Warn("rules_watch_failed", zap.Error(err))
		return
	}
	defer w.Close()
	watched := map[string]bool{}
	// Directories are watched, not files: editors and `rules update`
	// replace files by rename, which ends a watch on the file itself.
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			continue
		}
		watched[abs] = true
		dir := filepath.Dir(abs)
		// The catalogue's directory may not exist until the first
		// `rules update`; create it so that update is noticed.
		_ = os.MkdirAll(dir, 0o755)
		if err := w.Add(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Warn("rules_watch_failed", zap.String("dir", dir), zap.Error(err))
		}
	}
	var pending <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if abs, err := filepath.Abs(ev.Name); err == nil && watched[abs] {
				// Editors write several events per save: settle first.
				pending = time.After(200 * time.Millisecond)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			log.Warn("rules_watch_failed", zap.Error(err))
		case <-pending:
			pending = nil
			set, _, err := Load(cfg)
			if err != nil {
				log.Warn("rules_reload_failed", zap.String("error", err.Error()), zap.String("kept_version", dst.Load().Version()))
				continue
			}
			dst.Store(set)
			log.Info("rules_reloaded", zap.String("rules_version", set.Version()))
		}
	}
}
