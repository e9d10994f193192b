package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Parse reads a configuration from YAML, rejects unknown keys and inline
// secrets, validates every value and fills defaults. On failure it returns
// Errors listing every problem found, each with its line and key where the
// file has them. Secrets are not read: Load (or ResolveSecrets) does that.
func Parse(data []byte) (*Config, error) {
	cfg, _, errs := parse(data)
	if len(errs) > 0 {
		return nil, errs
	}
	return cfg, nil
}

// parse is Parse keeping the document's index, for Load to place the
// problems it finds later (secrets, receivers) on their lines. With errors
// the config is nil when the YAML could not be read at all, else decoded
// as far as it could be, without defaults.
func parse(data []byte) (*Config, *tree, Errors) {
	t, err := indexDocument(data)
	if err != nil {
		return nil, nil, err
	}
	var errs Errors
	if t.extraDoc > 0 {
		errs = append(errs, &KeyError{Line: t.extraDoc, Err: errors.New("only one YAML document is accepted")})
	}

	cfg := new(Config)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var suppress []string // keys whose values were not decoded
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, nil, Errors{syntaxError(err)}
		}
		for _, msg := range te.Errors {
			ke, undecoded, ok := t.rewrite(msg)
			errs = append(errs, ke)
			if ok {
				suppress = append(suppress, undecoded)
			}
		}
	}

	if len(suppress) > 0 {
		realign(cfg, suppress)
	}
	// `postgres:` with no value decodes to nil; the key written is the choice.
	if t.set("store.postgres") && cfg.Store.Postgres == nil && !slices.Contains(suppress, "store.postgres") {
		cfg.Store.Postgres = new(PostgresConfig)
	}
	v := validator{t: t, suppress: suppress}
	v.config(cfg)
	errs = append(errs, v.errs...)
	if len(errs) > 0 {
		sortByLine(errs)
		return cfg, t, errs
	}
	applyDefaults(cfg, t.set)
	return cfg, t, nil
}

// set reports whether the file writes key (an explicit 0 is not a default).
func (t *tree) set(key string) bool { _, ok := t.byPath[key]; return ok }

// realign puts back, as zero values, the sequence items yaml.v3 dropped
// because it could not decode them, so that services[i] in a validation
// message is still the i-th item of the file. Only the sequences validation
// reports by index need it.
func realign(c *Config, undecoded []string) {
	failed := make(map[string]bool, len(undecoded))
	for _, p := range undecoded {
		failed[p] = true
	}
	c.Services = reinsert(c.Services, "services", failed)
	for i := range c.Services {
		c.Services[i].Match = reinsert(c.Services[i].Match, "services["+strconv.Itoa(i)+"].match", failed)
	}
}

func reinsert[T any](items []T, path string, failed map[string]bool) []T {
	isFailed := func(i int) bool { return failed[path+"["+strconv.Itoa(i)+"]"] }
	var out []T
	for i, j := 0, 0; j < len(items) || isFailed(i); i++ {
		if isFailed(i) {
			var zero T
			out = append(out, zero)
			continue
		}
		out = append(out, items[j])
		j++
	}
	return out
}

// sortByLine orders problems as they appear in the file (stable, so
// file-level problems without a line keep their order at the end).
func sortByLine(errs Errors) {
	line := func(err error) int {
		var ke *KeyError
		if errors.As(err, &ke) && ke.Line > 0 {
			return ke.Line
		}
		return int(^uint(0) >> 1)
	}
	// Insertion sort: lists are short and this keeps it stable.
	for i := 1; i < len(errs); i++ {
		for j := i; j > 0 && line(errs[j]) < line(errs[j-1]); j-- {
			errs[j], errs[j-1] = errs[j-1], errs[j]
		}
	}
}

var syntaxLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns "yaml: line 3: did not find expected key" into a
// KeyError, so that every error Parse returns has one shape.
func syntaxError(err error) error {
	if m := syntaxLineRE.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &KeyError{Line: n, Err: fmt.Errorf("invalid YAML: %s", m[2])}
	}
	return &KeyError{Err: fmt.Errorf("invalid YAML: %w", err)}
}

// keyRef is one mapping key or sequence item of the document.
type keyRef struct {
	path   string // "services[0].match[1]"; "" is the document itself
	parent string // path of the enclosing mapping or sequence
	name   string // mapping key; "" for a sequence item
	line   int    // line of the key, or of the item
	value  *yaml.Node
}

// tree indexes a document by key path so that errors, found on decoded Go
// values that carry no positions, can name the line an operator must edit.
type tree struct {
	refs     []keyRef // document order
	byPath   map[string]keyRef
	root     *yaml.Node // the document's top node; nil when empty
	extraDoc int        // line of a second document, 0 if none
}

// indexDocument parses the YAML into nodes; a syntax error ends parsing here
// since nothing after it can be located reliably.
func indexDocument(data []byte) (*tree, Errors) {
	t := &tree{byPath: map[string]keyRef{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return t, nil
		}
		return nil, Errors{syntaxError(err)}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		t.extraDoc = max(next.Line, 1)
	case !errors.Is(err, io.EOF):
		return nil, Errors{syntaxError(err)}
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		t.root = doc.Content[0]
		t.walk(t.root, "")
	}
	return t, nil
}

func (t *tree) walk(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" && k.Tag == "!!merge" {
				continue
			}
			t.add(keyRef{path: joinKey(path, k.Value), parent: path, name: k.Value, line: k.Line, value: v})
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			t.add(keyRef{path: path + "[" + strconv.Itoa(i) + "]", parent: path, line: item.Line, value: item})
		}
	}
}

func (t *tree) add(r keyRef) {
	t.refs = append(t.refs, r)
	if _, dup := t.byPath[r.path]; !dup {
		t.byPath[r.path] = r
	}
	t.walk(r.value, r.path)
}

func joinKey(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// parentKey strips the last segment: "a.b[1]" → "a.b", "a.b" → "a".
func parentKey(p string) string {
	if i := strings.LastIndexAny(p, ".["); i >= 0 {
		return p[:i]
	}
	return ""
}

// line is where path is written, or where its nearest written ancestor is
// (a missing `match` is reported on its service); 0 when nothing is.
func (t *tree) line(path string) int {
	for p := path; p != ""; p = parentKey(p) {
		if r, ok := t.byPath[p]; ok {
			return r.line
		}
	}
	if t.root != nil && path == "" {
		return t.root.Line
	}
	return 0
}

// section names a mapping in messages: the document itself is "config".
func section(path string) string {
	if path == "" {
		return "config"
	}
	return path
}

var (
	unknownFieldRE = regexp.MustCompile("^line (\\d+): field (.+) not found in type (\\S+)$")
	typeErrRE      = regexp.MustCompile("^line (\\d+): cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
	dupKeyRE       = regexp.MustCompile(`^line (\d+): mapping key (".*") already defined at line (\d+)$`)
	dupFieldRE     = regexp.MustCompile(`^line (\d+): field (.+) already set in type (\S+)$`)
	durationRE     = regexp.MustCompile(`^line (\d+): invalid duration (".*"): (.*)$`)
	lineRE         = regexp.MustCompile(`^line (\d+): (.*)$`)
)

// rewrite turns one of yaml.v3's decoding messages, which name Go types
// ("field listn not found in type rules.Config"), into one that names the
// key path as written. When ok, undecoded is the path ("" for the whole
// document) whose value yaml.v3 left unset, so that validation does not pile
// a follow-up error on it.
func (t *tree) rewrite(msg string) (ke *KeyError, undecoded string, ok bool) {
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	if m := unknownFieldRE.FindStringSubmatch(msg); m != nil {
		line, name, typ := atoi(m[1]), m[2], m[3]
		parent := ""
		if r, found := t.findKey(line, name); found {
			parent = r.parent
		}
		if env, secret := inlineSecrets[typ][name]; secret {
			return &KeyError{Line: line, Key: joinKey(parent, name),
				Err: fmt.Errorf("%w; use %s_file or $%s", ErrInlineSecret, name, env)}, "", false
		}
		err := fmt.Errorf("%w %q in %s", ErrUnknownKey, name, section(parent))
		if s := suggest(name, knownKeys(typ)); s != "" {
			err = fmt.Errorf("%w (did you mean %q?)", err, s)
		}
		return &KeyError{Line: line, Err: err}, "", false
	}
	if m := typeErrRE.FindStringSubmatch(msg); m != nil {
		line, tag, val, goType := atoi(m[1]), m[2], m[3], m[4]
		path := t.findValue(line, tag, val)
		want, got := describeType(goType), describeTag(tag)
		err := fmt.Errorf("want %s, got %s", want, got)
		switch {
		case want == got:
			err = fmt.Errorf("value out of range for %s", goType)
		case want == "a list" && got == "a string":
			err = fmt.Errorf("want a list, got a string (write a single item as ['...'])")
		}
		return &KeyError{Line: line, Key: section(path), Err: err}, path, true
	}
	if m := durationRE.FindStringSubmatch(msg); m != nil {
		line := atoi(m[1])
		val, _ := strconv.Unquote(m[2])
		path := t.findValue(line, "!!str", val)
		return &KeyError{Line: line, Key: section(path), Err: fmt.Errorf("invalid duration %s: %s", m[2], m[3])}, path, true
	}
	if m := dupKeyRE.FindStringSubmatch(msg); m != nil {
		line, first := atoi(m[1]), atoi(m[3])
		name, _ := strconv.Unquote(m[2])
		parent := ""
		if r, found := t.findKey(line, name); found {
			parent = r.parent
		}
		// yaml.v3 stops decoding the whole mapping on a duplicate key.
		return &KeyError{Line: line, Err: fmt.Errorf("duplicate key %q in %s (first at line %d)", name, section(parent), first)}, parent, true
	}
	if m := dupFieldRE.FindStringSubmatch(msg); m != nil {
		line, name := atoi(m[1]), m[2]
		parent := ""
		if r, found := t.findKey(line, name); found {
			parent = r.parent
		}
		return &KeyError{Line: line, Err: fmt.Errorf("duplicate key %q in %s", name, section(parent))}, "", false
	}
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		return &KeyError{Line: atoi(m[1]), Err: errors.New(m[2])}, "", false
	}
	return &KeyError{Err: errors.New(msg)}, "", false
}

// findKey is the mapping key name written on line.
func (t *tree) findKey(line int, name string) (keyRef, bool) {
	for _, r := range t.refs {
		if r.line == line && r.name == name {
			return r, true
		}
	}
	return keyRef{}, false
}

// findValue is the path of the value on line that yaml.v3 complained about:
// the one of the right kind and, for scalars, whose text starts with val
// (yaml.v3 truncates long values to "1234567..."). "" is the document.
func (t *tree) findValue(line int, tag, val string) string {
	if t.root != nil && t.root.Kind != yaml.MappingNode && t.root.Line == line {
		return "" // the document itself is not a mapping
	}
	val = strings.TrimSuffix(val, "...")
	var fallback *keyRef
	for i := range t.refs {
		r := &t.refs[i]
		if r.value.Line != line {
			continue
		}
		switch {
		case tag == "!!map" && r.value.Kind == yaml.MappingNode,
			tag == "!!seq" && r.value.Kind == yaml.SequenceNode,
			tag != "!!map" && tag != "!!seq" && r.value.Kind == yaml.ScalarNode && strings.HasPrefix(r.value.Value, val):
			return r.path
		}
		if fallback == nil {
			fallback = r
		}
	}
	if fallback != nil {
		return fallback.path
	}
	return ""
}

// describeType names a Go type the way the config's reader thinks of it.
func describeType(goType string) string {
	switch {
	case goType == "rules.Duration":
		return "a duration such as 250ms, 2s or 1d"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), goType == "rules.Level":
		return "an integer"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "bool":
		return "true or false"
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	default: // maps and sections
		return "a mapping"
	}
}

func describeTag(tag string) string {
	switch tag {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number"
	case "!!bool":
		return "true or false"
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	case "!!null":
		return "null"
	case "!!timestamp":
		return "a timestamp"
	}
	return tag
}

// sectionTypes maps yaml.v3's type names ("rules.AuthConfig") to the struct
// types, to list a section's known keys for "did you mean" hints.
var sectionTypes = func() map[string]reflect.Type {
	m := map[string]reflect.Type{}
	var visit func(reflect.Type)
	visit = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || m[t.String()] != nil {
			return
		}
		m[t.String()] = t
		for f := range t.Fields() {
			if f.IsExported() && f.Tag.Get("yaml") != "-" {
				visit(f.Type)
			}
		}
	}
	visit(reflect.TypeFor[Config]())
	return m
}()

func knownKeys(typ string) []string {
	t, ok := sectionTypes[typ]
	if !ok {
		return nil
	}
	var keys []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.IsExported() && name != "-" && name != "" {
			keys = append(keys, name)
		}
	}
	return keys
}

// suggest returns the known key closest to name when it is close enough to
// be a typo (at most two edits), else "".
func suggest(name string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(name), k); d < bestD && d < len(k) {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
