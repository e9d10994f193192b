package diagnosis

import (
	"sort"
	"strings"
)

// This file holds the text matching behind the categories: which pod
// reasons, event reasons, label values and log lines count as what. All
// matching is ASCII case-insensitive and deterministic.

// configReasons are container waiting reasons of a pod that cannot start
// its containers: the runbook's "pods not starting (CrashLoopBackOff)".
var configReasons = map[string]bool{
	"CrashLoopBackOff":           true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"ImagePullBackOff":           true,
	"ErrImagePull":               true,
	"InvalidImageName":           true,
	"RunContainerError":          true,
}

// infraEventReasons are Warning event reasons that name network, storage or
// node trouble below the application.
var infraEventReasons = map[string]string{
	"FailedCreatePodSandBox": "network",
	"FailedKillPodSandBox":   "network",
	"NetworkNotReady":        "network",
	"NodeNotReady":           "node",
	"FailedMount":            "storage",
	"FailedAttachVolume":     "storage",
	"FailedMapVolume":        "storage",
}

// netPatterns are network failures as Go, glibc and most clients word them.
var netPatterns = []string{
	"connection refused",
	"no route to host",
	"i/o timeout",
	"dial tcp",
	"no such host",
	"network is unreachable",
}

// connFailurePatterns are the ways a log line says a connection could not
// be made or was lost; a line counts only together with a database hint.
var connFailurePatterns = []string{
	"connection refused",
	"econnrefused",
	"no route to host",
	"i/o timeout",
	"timed out",
	"timeout",
	"etimedout",
	"deadline exceeded",
	"could not connect",
	"can't connect",
	"cannot connect",
	"unable to connect",
	"failed to connect",
	"connection reset",
	"no such host",
	"network is unreachable",
	"too many connections",
}

// dbWords name a database as a word; netWords a network. Alert names and
// label values are matched against both.
var (
	dbWords = []string{
		"postgres", "postgresql", "mysql", "mariadb", "database", "databases", "db",
		"redis", "mongo", "mongodb", "cassandra", "memcached",
	}
	netWords = []string{"network", "dns", "connection", "connections"}
	// logDBWords add what drivers print in front of their errors.
	logDBWords = append([]string{"sql", "pq", "pgx", "psql"}, dbWords...)
	// dbPorts are the databases' well-known ports, as "host:port" prints them.
	dbPorts = []string{"5432", "6432", "3306", "6379", "27017", "9042", "11211", "1433", "1521", "26257"}
)

// infraLabelKeys are the label (and annotation) names whose value says what
// kind of component an alert is about.
var infraLabelKeys = []string{"component", "tier", "type", "layer"}

// textAnnotationKeys are the free-text annotations scanned for network
// failure patterns (never for bare words: "check the database" in a
// description is advice, not a sign).
var textAnnotationKeys = []string{"summary", "description", "message"}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlnum(c byte) bool { return isUpper(c) || isLower(c) || isDigit(c) }

// lowerASCII lower-cases ASCII letters only, so byte offsets stay those of s.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if isUpper(c) {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// boundary reports whether a word may start or end at byte i of s: at either
// end, next to a non-alphanumeric byte, at a letter/digit change, or at a
// camel-case change (lower→Upper, or the last capital of an acronym before a
// lower-case letter: "DBConnection" splits as DB|Connection).
func boundary(s string, i int) bool {
	if i <= 0 || i >= len(s) {
		return true
	}
	a, b := s[i-1], s[i]
	switch {
	case !isAlnum(a) || !isAlnum(b):
		return true
	case isDigit(a) != isDigit(b):
		return true
	case isLower(a) && isUpper(b):
		return true
	case isUpper(a) && isUpper(b) && i+1 < len(s) && isLower(s[i+1]):
		return true
	}
	return false
}

// findWord returns the first of words (lower-case) that occurs in s as a
// whole word, or "". "PostgresDown", "HighDBLatency", "MySQLReplicationLag"
// and "backend-db" match; "dbus", "Redistribute" and "CorednsErrors" do not.
func findWord(s string, words []string) string {
	low := lowerASCII(s)
	for _, w := range words {
		for from := 0; from < len(low); {
			i := strings.Index(low[from:], w)
			if i < 0 {
				break
			}
			start := from + i
			if boundary(s, start) && boundary(s, start+len(w)) {
				return w
			}
			from = start + 1
		}
	}
	return ""
}

// findPattern returns the first of patterns (lower-case) contained in s.
func findPattern(s string, patterns []string) string {
	low := lowerASCII(s)
	for _, p := range patterns {
		if strings.Contains(low, p) {
			return p
		}
	}
	return ""
}

// hasDBPort reports whether s names a database's well-known port as
// ":5432" not followed by another digit.
func hasDBPort(s string) bool {
	for _, p := range dbPorts {
		needle := ":" + p
		for from := 0; from < len(s); {
			i := strings.Index(s[from:], needle)
			if i < 0 {
				break
			}
			end := from + i + len(needle)
			if end == len(s) || !isDigit(s[end]) {
				return true
			}
			from = end
		}
	}
	return false
}

// isDBWord reports whether w names a database rather than a network.
func isDBWord(w string) bool {
	for _, d := range dbWords {
		if d == w {
			return true
		}
	}
	return false
}

// wordKind is "a database" or "the network" for an infrastructure word.
func wordKind(w string) string {
	if isDBWord(w) {
		return "a database"
	}
	return "the network"
}

// logConnFailure reports whether a log line shows a refused or timed-out
// connection to a database (a failure pattern and a database word or port),
// or a failed DNS lookup (":53" with a timeout or "server misbehaving").
// It returns the failure pattern.
func logConnFailure(line string) (string, bool) {
	p := findPattern(line, connFailurePatterns)
	if p == "" {
		if strings.Contains(lowerASCII(line), "server misbehaving") && strings.Contains(line, ":53") {
			return "server misbehaving", true
		}
		return "", false
	}
	if findWord(line, logDBWords) != "" || hasDBPort(line) {
		return p, true
	}
	low := lowerASCII(line)
	if strings.Contains(low, "lookup ") && strings.Contains(line, ":53") && (p == "i/o timeout" || p == "timeout") {
		return p, true
	}
	return "", false
}

// isProbeEvent reports whether an event is the kubelet's probe of the pod
// itself: "Readiness probe failed: dial tcp 10.1.2.3:8080: connect:
// connection refused" is what any crashing app produces, not network
// trouble.
func isProbeEvent(e Event) bool {
	if e.Reason == "Unhealthy" || e.Reason == "ProbeWarning" {
		return true
	}
	low := lowerASCII(e.Message)
	return strings.Contains(low, "probe failed") || strings.Contains(low, "probe errored")
}

// isImagePullEvent reports whether an event is about pulling an image. Its
// network errors ("dial tcp …: i/o timeout" to a registry) are left to the
// ImagePullBackOff rule: a mistyped registry reads the same, and rolling
// back to an image the nodes already hold helps in both cases.
func isImagePullEvent(e Event) bool {
	switch e.Reason {
	case "ErrImagePull", "ImagePullBackOff", "InspectFailed", "ErrImageNeverPull":
		return true
	}
	low := lowerASCII(e.Message)
	return strings.Contains(low, "pull image") || strings.Contains(low, "pulling image") || strings.Contains(low, "image pull")
}

// isMissingConfigMount reports whether a FailedMount event is about a
// ConfigMap or Secret that does not exist: a config error, not storage.
func isMissingConfigMount(e Event) bool {
	if e.Reason != "FailedMount" {
		return false
	}
	low := lowerASCII(e.Message)
	return (strings.Contains(low, "configmap") || strings.Contains(low, "secret")) && strings.Contains(low, "not found")
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// clean makes s one valid UTF-8 line: invalid bytes become U+FFFD and line
// breaks and tabs become spaces.
func clean(s string) string {
	return strings.TrimSpace(flat(s))
}

// flat is clean without the trimming.
func flat(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.ContainsAny(s, "\r\n\t") {
		s = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ", "\t", " ").Replace(s)
	}
	return s
}
