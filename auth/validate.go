package auth

import (
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
)

// Input rules, as Nakama applies them, so that a request valid there is valid here.
const (
	deviceIDMin, deviceIDMax = 10, 128
	customIDMin, customIDMax = 6, 128
	emailMin, emailMax       = 10, 255
	passwordMin              = 8
	usernameMax              = 128
	generatedUsernameLen     = 10
)

var emailPattern = regexp.MustCompile(`^.+@.+\..+$`)

// hasSpaceOrControl reports whether s has an ASCII control or whitespace byte: ids and emails
// may contain neither.
func hasSpaceOrControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return true
		}
	}
	return false
}

// hasControl reports whether s has an ASCII control byte; usernames may contain spaces.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f {
			return true
		}
	}
	return false
}

func validateIdentity(p Provider, id string) *Error {
	label, lo, hi := "Device ID", deviceIDMin, deviceIDMax
	if p == ProviderCustom {
		label, lo, hi = "Custom ID", customIDMin, customIDMax
	}
	switch {
	case id == "":
		return newError(CodeInvalidArgument, label+" is required.")
	case hasSpaceOrControl(id):
		return newError(CodeInvalidArgument, label+" invalid, no spaces or control characters allowed.")
	case len(id) < lo || len(id) > hi:
		return newError(CodeInvalidArgument, label+" invalid, must be "+strconv.Itoa(lo)+"-"+strconv.Itoa(hi)+" bytes.")
	}
	return nil
}

// validateEmail checks an email address and returns it lowercased.
func validateEmail(email string) (string, *Error) {
	switch {
	case hasSpaceOrControl(email):
		return "", newError(CodeInvalidArgument, "Invalid email address, no spaces or control characters allowed.")
	case !emailPattern.MatchString(email):
		return "", newError(CodeInvalidArgument, "Invalid email address format.")
	case len(email) < emailMin || len(email) > emailMax:
		return "", newError(CodeInvalidArgument, "Invalid email address, must be 10-255 bytes.")
	}
	return strings.ToLower(email), nil
}

func validatePassword(pw string) *Error {
	if len(pw) < passwordMin {
		return newError(CodeInvalidArgument, "Password must be at least 8 characters long.")
	}
	return nil
}

// validateUsername checks a caller-chosen username; empty means "generate one" and is valid.
func validateUsername(u string) *Error {
	switch {
	case hasControl(u):
		return newError(CodeInvalidArgument, "Username invalid, no spaces or control characters allowed.")
	case len(u) > usernameMax:
		return newError(CodeInvalidArgument, "Username invalid, must be 1-128 bytes.")
	}
	return nil
}

const usernameAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// generateUsername returns a random 10-letter username, as Nakama generates them. It is not a
// secret, so math/rand is enough; collisions are retried by the caller.
func generateUsername() string {
	var b [generatedUsernameLen]byte
	for i := range b {
		b[i] = usernameAlphabet[rand.IntN(len(usernameAlphabet))]
	}
	return string(b[:])
}
