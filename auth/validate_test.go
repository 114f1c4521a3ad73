package auth

import (
	"strings"
	"testing"
)

func TestValidateIdentity(t *testing.T) {
	const (
		devReq   = "Device ID is required."
		devChars = "Device ID invalid, no spaces or control characters allowed."
		devLen   = "Device ID invalid, must be 10-128 bytes."
		cusReq   = "Custom ID is required."
		cusChars = "Custom ID invalid, no spaces or control characters allowed."
		cusLen   = "Custom ID invalid, must be 6-128 bytes."
	)
	for _, tc := range []struct {
		p    Provider
		id   string
		want string // "" means valid
	}{
		{ProviderDevice, "", devReq},
		{ProviderDevice, strings.Repeat("d", 9), devLen},
		{ProviderDevice, strings.Repeat("d", 10), ""},
		{ProviderDevice, strings.Repeat("d", 128), ""},
		{ProviderDevice, strings.Repeat("d", 129), devLen},
		{ProviderDevice, "ééééé", ""},    // 10 bytes, 5 runes
		{ProviderDevice, "éééé", devLen}, // 8 bytes
		{ProviderDevice, "device 0123", devChars},
		{ProviderDevice, "device\x000123", devChars},
		{ProviderDevice, "device\x1f0123", devChars},
		{ProviderDevice, "device\x7f0123", devChars},
		{ProviderDevice, "\tdevice0123", devChars},
		{ProviderDevice, "x y", devChars}, // characters before length
		{ProviderDevice, "dev:ice/01-23_45.67", ""},
		{ProviderCustom, "", cusReq},
		{ProviderCustom, strings.Repeat("c", 5), cusLen},
		{ProviderCustom, strings.Repeat("c", 6), ""},
		{ProviderCustom, strings.Repeat("c", 128), ""},
		{ProviderCustom, strings.Repeat("c", 129), cusLen},
		{ProviderCustom, "cus tom1", cusChars},
		{ProviderCustom, "custom\n1", cusChars},
	} {
		err := validateIdentity(tc.p, tc.id)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s %q: %v, want valid", tc.p, tc.id, err)
		case tc.want != "" && (err == nil || err.Code != CodeInvalidArgument || err.Message != tc.want):
			t.Errorf("%s %q: %v, want code 3 %q", tc.p, tc.id, err, tc.want)
		}
	}
}

func TestValidateEmail(t *testing.T) {
	const (
		chars  = "Invalid email address, no spaces or control characters allowed."
		format = "Invalid email address format."
		length = "Invalid email address, must be 10-255 bytes."
	)
	domain := "@example.com"
	for _, tc := range []struct{ email, want, err string }{
		{"player@example.com", "player@example.com", ""},
		{"Player@Example.COM", "player@example.com", ""},
		{"abc@cd.efg", "abc@cd.efg", ""}, // 10 bytes
		{"ab@cd.efg", "", length},        // 9 bytes
		{"a@b.co", "", length},
		{strings.Repeat("x", 255-len(domain)) + domain, strings.Repeat("x", 255-len(domain)) + domain, ""},
		{strings.Repeat("x", 256-len(domain)) + domain, "", length},
		{"player.example.com", "", format},
		{"player@examplecom", "", format},
		{"@example.com", "", format},
		{"player@", "", format},
		{"player@.", "", format},
		{"", "", format},
		{"play er@example.com", "", chars},
		{"player@example.com\n", "", chars},
		{"player\x00@example.com", "", chars},
		{"a@b@example.com", "a@b@example.com", ""}, // the pattern is Nakama's, loose on purpose
	} {
		got, err := validateEmail(tc.email)
		if tc.err != "" {
			if err == nil || err.Code != CodeInvalidArgument || err.Message != tc.err {
				t.Errorf("%q: %v, want code 3 %q", tc.email, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.email, got, err, tc.want)
		}
	}
}

func TestValidatePassword(t *testing.T) {
	for pw, ok := range map[string]bool{"": false, "1234567": false, "12345678": true, "ééé": false, "éééé": true, strings.Repeat("p", 200): true} {
		err := validatePassword(pw)
		if ok != (err == nil) {
			t.Errorf("%q: %v, want valid=%v", pw, err, ok)
		}
		if err != nil && (err.Code != CodeInvalidArgument || err.Message != "Password must be at least 8 characters long.") {
			t.Errorf("%q: %v", pw, err)
		}
	}
}

func TestValidateUsername(t *testing.T) {
	const (
		control = "Username invalid, no spaces or control characters allowed."
		length  = "Username invalid, must be 1-128 bytes."
	)
	for _, tc := range []struct{ u, err string }{
		{"", ""}, // empty means generate one
		{"a", ""},
		{"Jane Doe", ""}, // spaces are allowed in usernames, as in Nakama
		{"ünïcødé", ""},
		{strings.Repeat("u", 128), ""},
		{strings.Repeat("u", 129), length},
		{strings.Repeat("é", 64), ""},
		{strings.Repeat("é", 65), length},
		{"bad\nname", control},
		{"bad\tname", control},
		{"bad\x00name", control},
		{"bad\x7fname", control},
		{"\r", control},
	} {
		err := validateUsername(tc.u)
		if tc.err == "" {
			if err != nil {
				t.Errorf("%q: %v, want valid", tc.u, err)
			}
			continue
		}
		if err == nil || err.Code != CodeInvalidArgument || err.Message != tc.err {
			t.Errorf("%q: %v, want code 3 %q", tc.u, err, tc.err)
		}
	}
}

func TestGenerateUsername(t *testing.T) {
	seen := make(map[string]bool)
	letters := make(map[rune]bool)
	for range 2000 {
		u := generateUsername()
		if len(u) != 10 {
			t.Fatalf("%q: length %d, want 10", u, len(u))
		}
		for _, r := range u {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				t.Fatalf("%q: has %q, want ASCII letters only", u, r)
			}
			letters[r] = true
		}
		if validateUsername(u) != nil {
			t.Fatalf("%q fails username validation", u)
		}
		seen[u] = true
	}
	if len(seen) < 1990 {
		t.Errorf("only %d distinct usernames in 2000", len(seen))
	}
	if len(letters) != 52 {
		t.Errorf("%d distinct letters used, want all 52", len(letters))
	}
}

func TestCharacterClasses(t *testing.T) {
	for b := 0; b < 256; b++ {
		s := string([]byte{'a', byte(b), 'z'})
		spaceOrControl := b <= ' ' || b == 0x7f
		control := b < ' ' || b == 0x7f
		if got := hasSpaceOrControl(s); got != spaceOrControl {
			t.Errorf("hasSpaceOrControl(%#x) = %v", b, got)
		}
		if got := hasControl(s); got != control {
			t.Errorf("hasControl(%#x) = %v", b, got)
		}
	}
}
