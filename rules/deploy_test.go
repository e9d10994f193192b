package rules

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// shippedExample is the example configuration the README points at.
var shippedExample = filepath.Join("..", "deploy", "amtriage.yml")

// commentedKey is a commented-out line of configuration ("# key: value",
// "#   key: value" nested): the example comments out what needs secrets.
var commentedKey = regexp.MustCompile(`^(\s*)# ((?:\s*)(?:- )?[a-z_0-9]+:(?:\s.*)?)$`)

// uncomment turns the example's commented-out configuration back on.
func uncomment(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if m := commentedKey.FindStringSubmatch(l); m != nil {
			lines[i] = m[1] + m[2]
		}
	}
	return strings.Join(lines, "\n")
}

// keyPaths lists every key the Config struct reads, sequences as "[]" and
// maps (reevaluate, fallback) as their own key.
func keyPaths(t reflect.Type, prefix string, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		path := joinKey(prefix, name)
		*out = append(*out, path)
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct:
			keyPaths(ft, path, out)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			keyPaths(ft.Elem(), path+"[]", out)
		}
	}
}

// filePaths lists the keys a YAML document writes, sequences as "[]".
func filePaths(n *yaml.Node, prefix string, out map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			filePaths(c, prefix, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := joinKey(prefix, n.Content[i].Value)
			out[p] = true
			filePaths(n.Content[i+1], p, out)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			filePaths(c, prefix+"[]", out)
		}
	}
}

// The shipped example loads and validates as it is, and with its
// commented-out receivers turned on it still parses and names every key
// the daemon reads.
func TestShippedExampleNamesEveryKey(t *testing.T) {
	for _, k := range []string{EnvBearerToken, EnvBasicAuthPassword, EnvPagerDutyKey, EnvSlackToken, EnvGrafanaToken} {
		t.Setenv(k, "")
	}
	if _, err := Load(shippedExample); err != nil {
		t.Fatalf("Load(%s): %v", shippedExample, err)
	}
	raw, err := os.ReadFile(shippedExample)
	if err != nil {
		t.Fatal(err)
	}
	full := uncomment(string(raw))
	if _, err := Parse([]byte(full)); err != nil {
		t.Fatalf("the example with its receivers uncommented does not parse:\n%v", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(full), &doc); err != nil {
		t.Fatal(err)
	}
	written := map[string]bool{}
	filePaths(&doc, "", written)
	var keys []string
	keyPaths(reflect.TypeFor[Config](), "", &keys)
	var missing []string
	for _, k := range keys {
		// A service's thresholds and routing are the global sections'
		// keys, shown once there; the per-service PagerDuty key exists
		// only per service.
		alias := strings.NewReplacer("services[].thresholds.", "severity.", "services[].routing.", "routing.").Replace(k)
		if !written[k] && !written[alias] && k != "routing.pagerduty_routing_key_file" {
			missing = append(missing, k)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("%s does not name these keys (commented out or not):\n  %s", shippedExample, strings.Join(missing, "\n  "))
	}
}
