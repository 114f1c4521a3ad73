package gateway

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/heroiclabs/nakama-common/api"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sessiongate/sessiongate/auth"
)

// Nakama's gateway encodes with proto field names, enum numbers and empty fields omitted, and
// ignores unknown request fields; doing the same gives clients byte-compatible JSON.
var (
	marshalJSON   = protojson.MarshalOptions{UseProtoNames: true, UseEnumNumbers: true}
	unmarshalJSON = protojson.UnmarshalOptions{DiscardUnknown: true}
)

var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// decodeBody reads a JSON request body into m and reports whether the body was empty. An empty
// body leaves m empty, as Nakama's gateway does, so the handler's own "X is required" check
// answers it.
func decodeBody(r *http.Request, m proto.Message) (empty bool, err error) {
	bp := bodyPool.Get().(*[]byte)
	defer bodyPool.Put(bp)
	buf := (*bp)[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return false, errorf(auth.CodeInvalidArgument, "Request body too large, limit is "+strconv.FormatInt(tooBig.Limit, 10)+" bytes.")
			}
			return false, errorf(auth.CodeInvalidArgument, "Unable to read request body.")
		}
	}
	*bp = buf
	if len(buf) == 0 {
		return true, nil
	}
	if err := unmarshalJSON.Unmarshal(buf, m); err != nil {
		return false, errorf(auth.CodeInvalidArgument, "Invalid request body: "+err.Error())
	}
	return false, nil
}

// writeJSON renders m as Nakama renders it.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, m proto.Message) {
	body, err := marshalJSON.Marshal(m)
	s.writeBody(w, r, body, err)
}

// writeBody writes an encoded JSON body, or the error of encoding it.
func (s *Server) writeBody(w http.ResponseWriter, r *http.Request, body []byte, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// checkServerKey enforces "Authorization: Basic base64(serverkey:)" on the routes a client
// calls before it has a session.
func (s *Server) checkServerKey(r *http.Request) error {
	h := r.Header.Get("Authorization")
	if h == "" {
		return errorf(auth.CodeUnauthenticated, "Server key required")
	}
	const prefix = "Basic "
	if !strings.HasPrefix(h, prefix) {
		return errorf(auth.CodeUnauthenticated, "Server key invalid")
	}
	raw, err := base64.StdEncoding.DecodeString(h[len(prefix):])
	if err != nil {
		return errorf(auth.CodeUnauthenticated, "Server key invalid")
	}
	user, _, ok := strings.Cut(string(raw), ":")
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(s.cfg.ServerKey)) != 1 {
		return errorf(auth.CodeUnauthenticated, "Server key invalid")
	}
	return nil
}

// checkHTTPKey enforces the http key on the server-to-server API (game backends, admin tools):
// "Authorization: Bearer <http key>", or Nakama's "?http_key=<http key>" query parameter.
func (s *Server) checkHTTPKey(r *http.Request) error {
	key := r.URL.Query().Get("http_key")
	if key == "" {
		h := r.Header.Get("Authorization")
		if h == "" {
			return errorf(auth.CodeUnauthenticated, "HTTP key required")
		}
		const prefix = "Bearer "
		if !strings.HasPrefix(h, prefix) {
			return errorf(auth.CodeUnauthenticated, "HTTP key invalid")
		}
		key = h[len(prefix):]
	}
	if subtle.ConstantTimeCompare([]byte(key), []byte(s.cfg.HTTPKey)) != 1 {
		return errorf(auth.CodeUnauthenticated, "HTTP key invalid")
	}
	return nil
}

// bearer verifies the request's session token.
func (s *Server) bearer(r *http.Request) (*auth.Claims, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, errorf(auth.CodeUnauthenticated, "Auth token required")
	}
	const prefix = "Bearer "
	if !strings.HasPrefix(h, prefix) {
		return nil, errorf(auth.CodeUnauthenticated, "Auth token invalid")
	}
	return s.auth.VerifySession(h[len(prefix):])
}

// authQuery reads the create and username query parameters of the authenticate routes.
func authQuery(r *http.Request) (create bool, username string, err error) {
	q := r.URL.Query()
	create = true
	if v := q.Get("create"); v != "" {
		create, err = strconv.ParseBool(v)
		if err != nil {
			return false, "", errorf(auth.CodeInvalidArgument, "Invalid create parameter, expected true or false.")
		}
	}
	return create, q.Get("username"), nil
}

func (s *Server) handleAuthenticateDevice(w http.ResponseWriter, r *http.Request) {
	var body api.AccountDevice
	s.authenticate(w, r, auth.ProviderDevice, &body, func(req *auth.AuthRequest) {
		req.ID, req.Vars = body.Id, body.Vars
	})
}

func (s *Server) handleAuthenticateCustom(w http.ResponseWriter, r *http.Request) {
	var body api.AccountCustom
	s.authenticate(w, r, auth.ProviderCustom, &body, func(req *auth.AuthRequest) {
		req.ID, req.Vars = body.Id, body.Vars
	})
}

func (s *Server) handleAuthenticateEmail(w http.ResponseWriter, r *http.Request) {
	var body api.AccountEmail
	s.authenticate(w, r, auth.ProviderEmail, &body, func(req *auth.AuthRequest) {
		req.Email, req.Password, req.Vars = body.Email, body.Password, body.Vars
	})
}

// authenticate is the shared shape of the three authenticate routes: server key, query,
// body, then the auth service; fill copies the decoded body into the request.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, p auth.Provider, body proto.Message, fill func(*auth.AuthRequest)) {
	if err := s.checkServerKey(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	create, username, err := authQuery(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	empty, err := decodeBody(r, body)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if empty && p == auth.ProviderEmail {
		// Nakama's gateway leaves the account nil for an empty body and answers this, before
		// it looks at the username query.
		s.writeError(w, r, errorf(auth.CodeInvalidArgument, "Email address and password is required."))
		return
	}
	req := auth.AuthRequest{Provider: p, Create: create, Username: username, ClientIP: s.clientIP(r)}
	fill(&req)
	sess, err := s.auth.Authenticate(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, &api.Session{Created: sess.Created, Token: sess.Token, RefreshToken: sess.RefreshToken})
}

func (s *Server) handleSessionRefresh(w http.ResponseWriter, r *http.Request) {
	if err := s.checkServerKey(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	var body api.SessionRefreshRequest
	if _, err := decodeBody(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	sess, err := s.auth.Refresh(r.Context(), body.Token, body.Vars)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, &api.Session{Token: sess.Token, RefreshToken: sess.RefreshToken})
}

func (s *Server) handleSessionLogout(w http.ResponseWriter, r *http.Request) {
	caller, err := s.bearer(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var body api.SessionLogoutRequest
	if _, err := decodeBody(r, &body); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.auth.Logout(r.Context(), caller, body.Token, body.RefreshToken); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("{}"))
}

func (s *Server) handleGetAccount(w http.ResponseWriter, r *http.Request) {
	caller, err := s.bearer(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	acct, err := s.auth.Account(r.Context(), caller.UserID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, accountMessage(acct))
}

// accountMessage renders an account as Nakama's api.Account. The password hash never leaves.
func accountMessage(a *auth.Account) *api.Account {
	out := &api.Account{
		User: &api.User{
			Id:         a.ID,
			Username:   a.Username,
			LangTag:    "en",
			Metadata:   "{}",
			CreateTime: timestamppb.New(a.CreateTime),
			UpdateTime: timestamppb.New(a.UpdateTime),
		},
		Wallet:   "{}",
		Email:    a.Email,
		CustomId: a.CustomID,
	}
	for _, id := range a.DeviceIDs {
		out.Devices = append(out.Devices, &api.AccountDevice{Id: id})
	}
	return out
}
