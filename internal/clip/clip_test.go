package clip

import (
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	for _, tt := range []struct {
		name, got, want string
	}{
		{"runes fit", Runes("héllo", 5), "héllo"},
		{"runes cut", Runes("héllo wörld", 7), "héllo…"},
		{"runes cut drops the space", Runes("ab cd", 4), "ab…"},
		{"runes zero", Runes("abc", 0), ""},
		{"bytes fit", Bytes("abcdef", 6), "abcdef"},
		{"bytes cut", Bytes("abcdefgh", 6), "abc…"},
		{"bytes cut before a split character", Bytes("ab€€", 7), "ab…"}, // € is 3 bytes
		{"bytes smaller than the mark", Bytes("abcdef", 2), "ab"},
		{"prefix", Prefix("a€b", 3), "a"},
		{"prefix fits", Prefix("a€", 4), "a€"},
		{"prefix inside the first character", Prefix("日本語", 2), ""},
		{"prefix on a boundary", Prefix("héllo", 3), "hé"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, tt.got, tt.want)
		}
		if !utf8.ValidString(tt.got) {
			t.Errorf("%s: %q is not valid UTF-8", tt.name, tt.got)
		}
	}
	if s := Bytes("日本語のテキスト", 10); len(s) > 10 || !utf8.ValidString(s) {
		t.Errorf("Bytes = %q (%d bytes), want ≤ 10 valid bytes", s, len(s))
	}
}
