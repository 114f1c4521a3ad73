package auth

import (
	"errors"
	"fmt"
)

// Code is a gRPC status code, the vocabulary Nakama's HTTP API speaks in its error bodies.
type Code int

// The codes this package produces. The HTTP edge maps them to statuses.
const (
	CodeInvalidArgument   Code = 3
	CodeNotFound          Code = 5
	CodeAlreadyExists     Code = 6
	CodePermissionDenied  Code = 7
	CodeResourceExhausted Code = 8
	CodeInternal          Code = 13
	CodeUnavailable       Code = 14
	CodeUnauthenticated   Code = 16
)

// Error is a failure with a client-facing code and message. Cause, when set, holds the
// underlying error for logs; it is never shown to clients.
type Error struct {
	Code    Code
	Message string
	Cause   error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Cause)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

func newError(code Code, msg string) *Error { return &Error{Code: code, Message: msg} }

func internalError(msg string, cause error) *Error {
	return &Error{Code: CodeInternal, Message: msg, Cause: cause}
}

// Sentinel errors returned by stores.
var (
	// ErrAccountNotFound: no account has that id or identity.
	ErrAccountNotFound = errors.New("account not found")
	// ErrUsernameTaken: another account already has that username.
	ErrUsernameTaken = errors.New("username already in use")
	// ErrIdentityTaken: another account already has that device id, custom id or email.
	ErrIdentityTaken = errors.New("identity already linked to another account")
)

// Client-facing messages, worded as Nakama words them so SDK users see familiar text.
const (
	msgAccountNotFound    = "User account not found."
	msgInvalidCredentials = "Invalid credentials."
	msgUsernameTaken      = "Username is already in use."
	msgTryLater           = "Try again later."
	msgTokenInvalid       = "Auth token invalid"
	msgRefreshInvalid     = "Refresh token invalid or expired."
)
