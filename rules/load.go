package rules

import (
	"fmt"
	"os"
	"path/filepath"
)

// Load reads, validates and defaults the configuration at path, then
// resolves its secrets: *_file keys relative to the file's directory (so a
// config and its secrets can move together), else the environment. Problems
// in the file are returned as Errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, err
	}
	if err := ResolveSecrets(cfg, filepath.Dir(path), os.Getenv); err != nil {
		return nil, err
	}
	for _, f := range []*string{&cfg.TLS.CertFile, &cfg.TLS.KeyFile} {
		if *f != "" && !filepath.IsAbs(*f) {
			*f = filepath.Join(filepath.Dir(path), *f)
		}
	}
	return cfg, nil
}
