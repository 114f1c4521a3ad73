package gateway

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzGameData feeds arbitrary bytes to the game session data check: it never panics, and what
// it accepts is a compact JSON object within the cap that means what the input meant.
func FuzzGameData(f *testing.F) {
	for _, seed := range []string{`{}`, `{ "a" : [1, 2.5e3, "x\u00e9"] }`, `[]`, `null`, `"s"`, `{"a":`, ` {"n":12345678901234567890} `, "{\"a\":\"\xff\"}", `{"":1E700}`, `{"s":"1E700 \" 9e999","n":-0.5e-400}`} {
		f.Add([]byte(seed))
	}
	const max = 64
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := compactData(raw, max)
		if err != nil {
			return
		}
		if len(out) > max || len(out) == 0 || out[0] != '{' || !utf8.Valid(out) {
			t.Fatalf("accepted %q as %q", raw, out)
		}
		var again bytes.Buffer
		if err := json.Compact(&again, out); err != nil || !bytes.Equal(again.Bytes(), out) {
			t.Fatalf("output %q is not compact JSON: %v", out, err)
		}
		var a, b any
		if json.Unmarshal(raw, &a) != nil || json.Unmarshal(out, &b) != nil {
			t.Fatalf("input %q or output %q does not decode", raw, out)
		}
	})
}
