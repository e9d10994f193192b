package rules

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Load reads, validates and defaults the configuration at path, then
// resolves its secrets: *_file keys relative to the file's directory (so a
// config and its secrets can move together), else the environment. Last it
// checks that every configured receiver can work. Problems are returned as
// Errors, all of them at once, each with its key and, where the file has
// it, its line.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := load(data, filepath.Dir(path), os.Getenv)
	if err != nil {
		return nil, err
	}
	for _, f := range []*string{&cfg.TLS.CertFile, &cfg.TLS.KeyFile} {
		if *f != "" && !filepath.IsAbs(*f) {
			*f = filepath.Join(filepath.Dir(path), *f)
		}
	}
	return cfg, nil
}

// LoadDefault is Load for the embedded default configuration: what `serve`
// runs without --config. Its secrets can only come from the environment
// (getenv; os.Getenv when nil).
func LoadDefault(getenv func(string) string) (*Config, error) {
	return load(defaultYAML, ".", getenv)
}

func load(data []byte, baseDir string, getenv func(string) string) (*Config, error) {
	cfg, t, errs := parse(data)
	if cfg == nil {
		return nil, errs
	}
	// Secrets are read even when the file has other problems, so that a
	// missing secret file is listed with them rather than after the fix.
	var serrs Errors
	if err := ResolveSecrets(cfg, baseDir, getenv); err != nil && !errors.As(err, &serrs) {
		return nil, err
	}
	serrs = slices.DeleteFunc(serrs, func(e error) bool {
		return errors.Is(e, errNoDSN) && reported(errs, "store.postgres")
	})
	for _, e := range serrs {
		var ke *KeyError
		if errors.As(e, &ke) && ke.Line == 0 {
			ke.Line = t.line(ke.Key)
		}
	}
	if len(errs) == 0 {
		// Receivers are checked with the secrets they have; one whose
		// secret could not be read gets that error alone.
		v := validator{t: t}
		for _, e := range serrs {
			var ke *KeyError
			if errors.As(e, &ke) {
				v.suppress = append(v.suppress, receiverOf(ke.Key))
			}
		}
		v.receivers(cfg)
		errs = v.errs
	}
	errs = append(errs, serrs...)
	if len(errs) > 0 {
		sortByLine(errs)
		return nil, errs
	}
	return cfg, nil
}

// reported tells whether errs already has a problem at key or within it.
func reported(errs Errors, key string) bool {
	for _, e := range errs {
		var ke *KeyError
		if errors.As(e, &ke) && ke.Key != "" && related(ke.Key, key) {
			return true
		}
	}
	return false
}

// receiverOf is the receiver section a secret key belongs to: a service's
// PagerDuty key is PagerDuty's.
func receiverOf(key string) string {
	if strings.HasSuffix(key, ".pagerduty_routing_key_file") {
		return "pagerduty"
	}
	section, _, _ := strings.Cut(key, ".")
	return section
}
