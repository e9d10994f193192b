// Package clip shortens text for places with a size limit (Slack blocks,
// PagerDuty fields, notes in a decision, log lines) without splitting a
// UTF-8 character, marking every cut with "…".
package clip

import (
	"strings"
	"unicode/utf8"
)

// Ellipsis marks a cut.
const Ellipsis = "…"

// Runes returns s if it has at most n runes, else its first n-1 runes
// (trailing spaces dropped) and "…": n runes in all.
func Runes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	i := 0
	for count := 0; count < n-1; count++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return strings.TrimRight(s[:i], " ") + Ellipsis
}

// Bytes returns s if it is at most n bytes long, else the longest prefix
// that ends on a character boundary and leaves room for "…", then "…":
// at most n bytes in all.
func Bytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n < len(Ellipsis) {
		return Prefix(s, n)
	}
	return Prefix(s, n-len(Ellipsis)) + Ellipsis
}

// Prefix returns the longest prefix of s of at most n bytes that ends on a
// character boundary, unmarked: for values stored, not shown.
func Prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
