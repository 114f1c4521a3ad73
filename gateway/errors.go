package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/sessiongate/sessiongate/auth"
)

// httpStatus maps a gRPC code to the HTTP status Nakama's gateway answers with.
func httpStatus(c auth.Code) int {
	switch c {
	case auth.CodeInvalidArgument:
		return http.StatusBadRequest
	case auth.CodeNotFound:
		return http.StatusNotFound
	case auth.CodeAlreadyExists, codeAborted:
		return http.StatusConflict
	case auth.CodePermissionDenied:
		return http.StatusForbidden
	case auth.CodeResourceExhausted:
		return http.StatusTooManyRequests
	case auth.CodeUnavailable:
		return http.StatusServiceUnavailable
	case auth.CodeUnauthenticated:
		return http.StatusUnauthorized
	case codeUnimplemented:
		return http.StatusNotImplemented
	default:
		return http.StatusInternalServerError
	}
}

// codeUnimplemented is what Nakama answers for a known path with the wrong method.
const codeUnimplemented auth.Code = 12

// codeAborted is gRPC's ABORTED, a concurrency conflict (a stale game session data version);
// gRPC gateways answer it with 409.
const codeAborted auth.Code = 10

// writeError renders err as Nakama's {"code","message"} body. Errors that are not *auth.Error
// are internal: the client sees a generic message and the cause goes to the log.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *auth.Error
	if !errors.As(err, &e) {
		e = &auth.Error{Code: auth.CodeInternal, Message: "Internal server error.", Cause: err}
	}
	if e.Code == auth.CodeInternal || e.Code == auth.CodeUnavailable {
		s.log.Error().Err(e.Cause).Str("route", routeName(r)).Str("message", e.Message).Msg("request failed")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if e.Code == auth.CodeUnauthenticated {
		// gRPC gateways put the reason here; some HTTP clients require the header on a 401.
		h.Set("WWW-Authenticate", e.Message)
	}
	w.WriteHeader(httpStatus(e.Code))
	body := make([]byte, 0, 32+len(e.Message))
	body = append(body, `{"code":`...)
	body = strconv.AppendInt(body, int64(e.Code), 10)
	body = append(body, `,"message":`...)
	msg, _ := json.Marshal(e.Message) // a string always marshals
	body = append(body, msg...)
	body = append(body, '}')
	_, _ = w.Write(body)
}

func errorf(code auth.Code, msg string) error { return &auth.Error{Code: code, Message: msg} }
