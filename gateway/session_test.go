package gateway_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

const (
	refreshRoute = "/v2/account/session/refresh"
	logoutRoute  = "/v2/session/logout"
	accountRoute = "/v2/account"
)

func TestSession(t *testing.T) {
	runBackends(t, []backendTest{
		{"TokenClaims", testTokenClaims},
		{"ForgedTokens", testForgedTokens},
		{"RefreshTokenIsNotASessionToken", testRefreshTokenIsNotASessionToken},
		{"Refresh", testRefresh},
		{"RefreshBadInput", testRefreshBadInput},
		{"LogoutBoth", testLogoutBoth},
		{"LogoutAll", testLogoutAll},
		{"LogoutSessionOnly", testLogoutSessionOnly},
		{"LogoutRefreshOnly", testLogoutRefreshOnly},
		{"LogoutBadInput", testLogoutBadInput},
		{"Account", testAccount},
	})
}

var canonicalUUID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func testTokenClaims(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	before := time.Now().Unix()
	vars := map[string]string{"platform": "ios", "k": "v with spaces", "empty": ""}
	body, _ := json.Marshal(map[string]any{"id": "device-0123456789", "vars": vars})
	sess := mustSession(t, s.post(t, deviceRoute+"?username=claims", string(body)))
	after := time.Now().Unix()

	header, c := decodeJWT(t, sess.Token)
	if header["alg"] != "HS256" || header["typ"] != "JWT" {
		t.Errorf("session token header %v, want alg HS256 typ JWT", header)
	}
	if !canonicalUUID.MatchString(c.TokenID) || !canonicalUUID.MatchString(c.UserID) {
		t.Errorf("tid %q, uid %q: want lower-case UUIDs", c.TokenID, c.UserID)
	}
	if c.Username != "claims" {
		t.Errorf("usn %q, want claims", c.Username)
	}
	if !maps.Equal(c.Vars, vars) {
		t.Errorf("vrs %v, want %v", c.Vars, vars)
	}
	if c.IssuedAt < before || c.IssuedAt > after {
		t.Errorf("iat %d, want within [%d, %d]", c.IssuedAt, before, after)
	}
	if got := c.ExpiresAt - c.IssuedAt; got != int64(testExpiry/time.Second) {
		t.Errorf("session exp-iat = %ds, want %v", got, testExpiry)
	}
	// The signature is HS256 with the session key.
	if _, err := jwt.Parse(sess.Token, func(*jwt.Token) (any, error) { return []byte(testSessionKey), nil },
		jwt.WithValidMethods([]string{"HS256"})); err != nil {
		t.Errorf("session token does not verify with the session key: %v", err)
	}

	rheader, rc := decodeJWT(t, sess.RefreshToken)
	if rheader["alg"] != "HS256" {
		t.Errorf("refresh token header %v, want alg HS256", rheader)
	}
	if rc.TokenID != c.TokenID || rc.UserID != c.UserID || rc.Username != c.Username || !maps.Equal(rc.Vars, vars) {
		t.Errorf("refresh claims %+v do not match session claims %+v", rc, c)
	}
	if got := rc.ExpiresAt - rc.IssuedAt; got != int64(testRefreshExp/time.Second) {
		t.Errorf("refresh exp-iat = %ds, want %v", got, testRefreshExp)
	}
	if _, err := jwt.Parse(sess.RefreshToken, func(*jwt.Token) (any, error) { return []byte(testRefreshKey), nil },
		jwt.WithValidMethods([]string{"HS256"})); err != nil {
		t.Errorf("refresh token does not verify with the refresh key: %v", err)
	}
	if _, err := jwt.Parse(sess.RefreshToken, func(*jwt.Token) (any, error) { return []byte(testSessionKey), nil }); err == nil {
		t.Error("refresh token verifies with the session key")
	}

	// Each authenticate starts a new token id for the same user; no vars means no vrs claim.
	again := s.authDevice(t, "device-0123456789", "")
	c2 := tokenClaims(t, again.Token)
	if c2.TokenID == c.TokenID {
		t.Error("second authenticate reused the token id")
	}
	if c2.UserID != c.UserID {
		t.Errorf("second authenticate uid %s, want %s", c2.UserID, c.UserID)
	}
	if payload := jwtPayload(t, again.Token); bytes.Contains(payload, []byte(`"vrs"`)) {
		t.Errorf("token without vars carries vrs: %s", payload)
	}
	// The default expiry is 60s and 1h.
	cfg := testConfig()
	cfg.Auth.TokenExpiry, cfg.Auth.RefreshTokenExpiry = 0, 0
	d := startServer(t, cfg, b.stores(t)).authDevice(t, "device-0123456789", "")
	if dc := tokenClaims(t, d.Token); dc.ExpiresAt-dc.IssuedAt != 60 {
		t.Errorf("default session expiry %ds, want 60", dc.ExpiresAt-dc.IssuedAt)
	}
	if dc := tokenClaims(t, d.RefreshToken); dc.ExpiresAt-dc.IssuedAt != 3600 {
		t.Errorf("default refresh expiry %ds, want 3600", dc.ExpiresAt-dc.IssuedAt)
	}
}

// jwtPayload returns a token's decoded payload bytes.
func jwtPayload(t *testing.T, token string) []byte {
	t.Helper()
	raw, err := jwtDecodeSegment(strings.Split(token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func jwtDecodeSegment(seg string) ([]byte, error) {
	return jwt.NewParser().DecodeSegment(seg)
}

// forge signs claims with method and key, as an attacker or a buggy client would.
func forge(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatalf("forging %s token: %v", method.Alg(), err)
	}
	return s
}

func testForgedTokens(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	real := s.authDevice(t, "device-0123456789", "")
	c := tokenClaims(t, real.Token)
	now := time.Now().Unix()
	valid := func() jwt.MapClaims {
		return jwt.MapClaims{"tid": uuid.NewString(), "uid": c.UserID, "usn": c.Username, "exp": now + 60, "iat": now}
	}
	with := func(k string, v any) jwt.MapClaims { m := valid(); m[k] = v; return m }
	without := func(k string) jwt.MapClaims { m := valid(); delete(m, k); return m }
	key := []byte(testSessionKey)

	// A token forged with the right key and method is accepted: the harness itself is sound.
	good := forge(t, jwt.SigningMethodHS256, key, valid())
	if r := s.do(t, http.MethodGet, accountRoute, "", "Authorization", bearer(good)); r.status != http.StatusOK {
		t.Fatalf("well-formed HS256 token refused: %d %s", r.status, r.body)
	}

	for name, tok := range map[string]string{
		"alg none":          forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, valid()),
		"HS512 right key":   forge(t, jwt.SigningMethodHS512, key, valid()),
		"HS384 right key":   forge(t, jwt.SigningMethodHS384, key, valid()),
		"wrong key":         forge(t, jwt.SigningMethodHS256, []byte("not-the-key"), valid()),
		"refresh key":       forge(t, jwt.SigningMethodHS256, []byte(testRefreshKey), valid()),
		"expired":           forge(t, jwt.SigningMethodHS256, key, with("exp", now-1)),
		"expired long ago":  forge(t, jwt.SigningMethodHS256, key, with("exp", now-3600)),
		"no exp":            forge(t, jwt.SigningMethodHS256, key, without("exp")),
		"exp zero":          forge(t, jwt.SigningMethodHS256, key, with("exp", 0)),
		"exp string":        forge(t, jwt.SigningMethodHS256, key, with("exp", "tomorrow")),
		"no tid":            forge(t, jwt.SigningMethodHS256, key, without("tid")),
		"no uid":            forge(t, jwt.SigningMethodHS256, key, without("uid")),
		"uid not uuid":      forge(t, jwt.SigningMethodHS256, key, with("uid", "admin")),
		"tampered payload":  tamper(t, real.Token),
		"truncated":         real.Token[:len(real.Token)-2],
		"garbage":           "not.a.token",
		"two segments":      "abc.def",
		"refresh token":     real.RefreshToken,
		"empty":             "",
		"signature removed": real.Token[:strings.LastIndexByte(real.Token, '.')+1],
	} {
		r := s.do(t, http.MethodGet, accountRoute, "", "Authorization", bearer(tok))
		if tok == "" {
			// "Bearer " with nothing after it.
			wantError(t, r, http.StatusUnauthorized, 16, "Auth token invalid")
			continue
		}
		if r.status != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401; body %s", name, r.status, r.body)
			continue
		}
		wantError(t, r, http.StatusUnauthorized, 16, "Auth token invalid")
		// The logout route checks the bearer the same way.
		wantError(t, s.logout(t, tok, "", ""), http.StatusUnauthorized, 16, "Auth token invalid")
	}
	wantError(t, s.do(t, http.MethodGet, accountRoute, ""), http.StatusUnauthorized, 16, "Auth token required")
	wantError(t, s.do(t, http.MethodGet, accountRoute, "", "Authorization", basicAuth(testServerKey)), http.StatusUnauthorized, 16, "Auth token invalid")
	wantError(t, s.do(t, http.MethodGet, accountRoute, "", "Authorization", real.Token), http.StatusUnauthorized, 16, "Auth token invalid")
	wantError(t, s.do(t, http.MethodPost, logoutRoute, "{}"), http.StatusUnauthorized, 16, "Auth token required")
	// The genuine token still works after all that.
	s.getAccount(t, real.Token)
}

// tamper changes the username in a token's payload, keeping the signature.
func tamper(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	raw, err := jwtDecodeSegment(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["usn"] = "admin"
	out, _ := json.Marshal(m)
	parts[1] = base64.RawURLEncoding.EncodeToString(out)
	return strings.Join(parts, ".")
}

func testRefreshTokenIsNotASessionToken(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	sess := s.authDevice(t, "device-0123456789", "")
	wantError(t, s.do(t, http.MethodGet, accountRoute, "", "Authorization", bearer(sess.RefreshToken)), http.StatusUnauthorized, 16, "Auth token invalid")
	wantError(t, s.logout(t, sess.RefreshToken, "", ""), http.StatusUnauthorized, 16, "Auth token invalid")
	// And the session token is not a refresh token.
	wantError(t, s.refresh(t, sess.Token, nil), http.StatusUnauthorized, 16, "Refresh token invalid or expired.")
	// Both still work for their own purpose.
	s.getAccount(t, sess.Token)
	mustSession(t, s.refresh(t, sess.RefreshToken, nil))
}

func testRefresh(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	vars := map[string]string{"a": "1", "b": "2"}
	body, _ := json.Marshal(map[string]any{"id": "device-0123456789", "vars": vars})
	orig := mustSession(t, s.post(t, deviceRoute+"?username=refresher", string(body)))
	oc := tokenClaims(t, orig.Token)

	check := func(name string, r response, wantVars map[string]string) session {
		t.Helper()
		sess := mustSession(t, r)
		wantCreated(t, sess, false)
		for _, tok := range []string{sess.Token, sess.RefreshToken} {
			c := tokenClaims(t, tok)
			if c.TokenID != oc.TokenID || c.UserID != oc.UserID || c.Username != "refresher" {
				t.Errorf("%s: claims %+v, want tid %s uid %s usn refresher", name, c, oc.TokenID, oc.UserID)
			}
			if !maps.Equal(c.Vars, wantVars) {
				t.Errorf("%s: vrs %v, want %v", name, c.Vars, wantVars)
			}
		}
		c := tokenClaims(t, sess.Token)
		if c.ExpiresAt-c.IssuedAt != int64(testExpiry/time.Second) {
			t.Errorf("%s: session exp-iat %d", name, c.ExpiresAt-c.IssuedAt)
		}
		rc := tokenClaims(t, sess.RefreshToken)
		if rc.ExpiresAt-rc.IssuedAt != int64(testRefreshExp/time.Second) {
			t.Errorf("%s: refresh exp-iat %d", name, rc.ExpiresAt-rc.IssuedAt)
		}
		// The new session token works.
		a, _ := s.getAccount(t, sess.Token)
		if a.User.ID != oc.UserID {
			t.Errorf("%s: account %s, want %s", name, a.User.ID, oc.UserID)
		}
		return sess
	}

	// No vars and empty vars keep the token's vars.
	check("no vars", s.refresh(t, orig.RefreshToken, nil), vars)
	check("empty vars", s.refresh(t, orig.RefreshToken, map[string]string{}), vars)
	check("vars null", s.post(t, refreshRoute, `{"token":"`+orig.RefreshToken+`","vars":null}`), vars)
	// Non-empty vars replace them entirely (no merge).
	replaced := check("new vars", s.refresh(t, orig.RefreshToken, map[string]string{"c": "3"}), map[string]string{"c": "3"})
	// Refreshing the refreshed pair keeps the replaced vars.
	check("chained", s.refresh(t, replaced.RefreshToken, nil), map[string]string{"c": "3"})
	// The original session token is still valid: refresh does not revoke it.
	s.getAccount(t, orig.Token)
	// Trailing separators work on this route too.
	mustSession(t, s.post(t, refreshRoute+"?&", `{"token":"`+orig.RefreshToken+`"}`))
}

func testRefreshBadInput(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	sess := s.authDevice(t, "device-0123456789", "")
	for _, body := range []string{"", "{}", `{"token":""}`, `{"vars":{"a":"b"}}`} {
		wantError(t, s.post(t, refreshRoute, body), http.StatusBadRequest, 3, "Refresh token is required.")
	}
	now := time.Now().Unix()
	uid := tokenClaims(t, sess.Token).UserID
	claims := func(exp int64) jwt.MapClaims {
		return jwt.MapClaims{"tid": uuid.NewString(), "uid": uid, "usn": "x", "exp": exp, "iat": now}
	}
	rk := []byte(testRefreshKey)
	for name, tok := range map[string]string{
		"session token":   sess.Token,
		"garbage":         "garbage",
		"expired":         forge(t, jwt.SigningMethodHS256, rk, claims(now-1)),
		"no exp":          forge(t, jwt.SigningMethodHS256, rk, jwt.MapClaims{"tid": uuid.NewString(), "uid": uid, "iat": now}),
		"HS512":           forge(t, jwt.SigningMethodHS512, rk, claims(now+60)),
		"alg none":        forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(now+60)),
		"session key":     forge(t, jwt.SigningMethodHS256, []byte(testSessionKey), claims(now+60)),
		"tampered":        tamper(t, sess.RefreshToken),
		"truncated":       sess.RefreshToken[:len(sess.RefreshToken)-3],
		"bearer prefixed": "Bearer " + sess.RefreshToken,
	} {
		r := s.refresh(t, tok, nil)
		if r.status != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, r.status)
		}
		wantError(t, r, http.StatusUnauthorized, 16, "Refresh token invalid or expired.")
	}
	// A well-formed refresh token for a user that does not exist.
	ghost := forge(t, jwt.SigningMethodHS256, rk, jwt.MapClaims{"tid": uuid.NewString(), "uid": uuid.NewString(), "usn": "ghost", "exp": now + 60, "iat": now})
	wantError(t, s.refresh(t, ghost, nil), http.StatusNotFound, 5, "User account not found.")
	// The server key is required.
	wantError(t, s.do(t, http.MethodPost, refreshRoute, `{"token":"`+sess.RefreshToken+`"}`), http.StatusUnauthorized, 16, "Server key required")
	wantError(t, s.do(t, http.MethodPost, refreshRoute, `{"token":"`+sess.RefreshToken+`"}`, "Authorization", bearer(sess.Token)),
		http.StatusUnauthorized, 16, "Server key invalid")
}

// wantRevoked checks that the session token fails on the API and the refresh token on refresh.
func wantRevoked(t *testing.T, s *testServer, sess session, name string) {
	t.Helper()
	if r := s.do(t, http.MethodGet, accountRoute, "", "Authorization", bearer(sess.Token)); r.status != http.StatusUnauthorized {
		t.Errorf("%s: session token after logout: status %d, want 401", name, r.status)
	} else {
		wantError(t, r, http.StatusUnauthorized, 16, "Auth token invalid")
	}
	if r := s.refresh(t, sess.RefreshToken, nil); r.status != http.StatusUnauthorized {
		t.Errorf("%s: refresh token after logout: status %d, want 401", name, r.status)
	} else {
		wantError(t, r, http.StatusUnauthorized, 16, "Refresh token invalid or expired.")
	}
}

func wantLoggedOut(t *testing.T, r response) {
	t.Helper()
	if r.status != http.StatusOK || string(r.body) != "{}" {
		t.Fatalf("logout: status %d body %s, want 200 {}", r.status, r.body)
	}
}

func testLogoutBoth(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	sess := s.authDevice(t, "device-0123456789", "")
	other := s.authDevice(t, "device-0123456789", "") // a second login of the same user
	wantLoggedOut(t, s.logout(t, sess.Token, sess.Token, sess.RefreshToken))
	wantRevoked(t, s, sess, "logged out pair")
	// The logout route itself refuses the revoked token.
	wantError(t, s.logout(t, sess.Token, "", ""), http.StatusUnauthorized, 16, "Auth token invalid")
	// A pair refreshed from a logged-out pair belongs to the same login and ends with it.
	chain := s.authDevice(t, "device-0123456789", "")
	refreshed := mustSession(t, s.refresh(t, chain.RefreshToken, nil))
	wantLoggedOut(t, s.logout(t, refreshed.Token, chain.Token, chain.RefreshToken))
	wantRevoked(t, s, chain, "logged out pair")
	wantRevoked(t, s, refreshed, "pair refreshed from the logged out pair")
	// The other login of the same user is another chain, untouched.
	s.getAccount(t, other.Token)
	mustSession(t, s.refresh(t, other.RefreshToken, nil))
	// Logging out again with the other session as caller works, and is idempotent.
	wantLoggedOut(t, s.logout(t, other.Token, sess.Token, sess.RefreshToken))
	// A new login of the same user right after works.
	fresh := s.authDevice(t, "device-0123456789", "")
	s.getAccount(t, fresh.Token)
	mustSession(t, s.refresh(t, fresh.RefreshToken, nil))
}

func testLogoutAll(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	first := s.authDevice(t, "device-0123456789", "")
	second := s.authDevice(t, "device-0123456789", "")
	refreshed := mustSession(t, s.refresh(t, second.RefreshToken, nil))
	bystander := s.authDevice(t, "device-someone-else", "")

	for _, body := range []string{`{"token":"","refresh_token":""}`, "{}", ""} {
		// Each round needs a live caller; the first round revokes everything of the user.
		caller := s.authDevice(t, "device-0123456789", "")
		r := s.do(t, http.MethodPost, logoutRoute, body, "Authorization", bearer(caller.Token))
		wantLoggedOut(t, r)
		for name, sess := range map[string]session{"caller": caller, "first": first, "second": second, "refreshed": refreshed} {
			wantRevoked(t, s, sess, name)
		}
		// Another user's tokens are untouched.
		s.getAccount(t, bystander.Token)
		mustSession(t, s.refresh(t, bystander.RefreshToken, nil))
		// A login in the same second, right after, is not born revoked.
		after := s.authDevice(t, "device-0123456789", "")
		s.getAccount(t, after.Token)
		again := mustSession(t, s.refresh(t, after.RefreshToken, nil))
		s.getAccount(t, again.Token)
	}
}

func testLogoutSessionOnly(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	sess := s.authDevice(t, "device-0123456789", "")
	wantLoggedOut(t, s.logout(t, sess.Token, sess.Token, ""))
	wantError(t, s.do(t, http.MethodGet, accountRoute, "", "Authorization", bearer(sess.Token)), http.StatusUnauthorized, 16, "Auth token invalid")
	// The refresh token still works, and its new session token, in the same chain, is valid.
	next := mustSession(t, s.refresh(t, sess.RefreshToken, nil))
	if tokenClaims(t, next.Token).TokenID != tokenClaims(t, sess.Token).TokenID {
		t.Error("refresh after logout started a new chain")
	}
	s.getAccount(t, next.Token)
	// The revoked session token stays revoked.
	wantError(t, s.do(t, http.MethodGet, accountRoute, "", "Authorization", bearer(sess.Token)), http.StatusUnauthorized, 16, "Auth token invalid")
}

func testLogoutRefreshOnly(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	sess := s.authDevice(t, "device-0123456789", "")
	wantLoggedOut(t, s.logout(t, sess.Token, "", sess.RefreshToken))
	wantError(t, s.refresh(t, sess.RefreshToken, nil), http.StatusUnauthorized, 16, "Refresh token invalid or expired.")
	// The session token keeps working until it expires.
	s.getAccount(t, sess.Token)
}

func testLogoutBadInput(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	mine := s.authDevice(t, "device-0123456789", "")
	theirs := s.authDevice(t, "device-someone-else", "")
	wantError(t, s.logout(t, mine.Token, theirs.Token, ""), http.StatusBadRequest, 3, "Session token invalid.")
	wantError(t, s.logout(t, mine.Token, "", theirs.RefreshToken), http.StatusBadRequest, 3, "Refresh token invalid.")
	wantError(t, s.logout(t, mine.Token, mine.Token, theirs.RefreshToken), http.StatusBadRequest, 3, "Refresh token invalid.")
	wantError(t, s.logout(t, mine.Token, "garbage", ""), http.StatusBadRequest, 3, "Session token invalid.")
	wantError(t, s.logout(t, mine.Token, "", "garbage"), http.StatusBadRequest, 3, "Refresh token invalid.")
	// Swapped kinds are refused: the keys differ.
	wantError(t, s.logout(t, mine.Token, mine.RefreshToken, ""), http.StatusBadRequest, 3, "Session token invalid.")
	wantError(t, s.logout(t, mine.Token, "", mine.Token), http.StatusBadRequest, 3, "Refresh token invalid.")
	wantErrorPrefix(t, s.do(t, http.MethodPost, logoutRoute, `{"token":`, "Authorization", bearer(mine.Token)), http.StatusBadRequest, 3, "Invalid request body: ")
	// None of that revoked anything.
	for _, sess := range []session{mine, theirs} {
		s.getAccount(t, sess.Token)
		mustSession(t, s.refresh(t, sess.RefreshToken, nil))
	}
	// The server key is not a bearer token.
	wantError(t, s.do(t, http.MethodPost, logoutRoute, "{}", "Authorization", basicAuth(testServerKey)), http.StatusUnauthorized, 16, "Auth token invalid")
}

func testAccount(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	before := time.Now().Add(-time.Second)
	dev := s.authDevice(t, "device-0123456789", "?username=devplayer")
	cus := mustSession(t, s.post(t, customRoute+"?username=cusplayer", `{"id":"custom-123"}`))
	em := s.authEmail(t, "Mail@Example.com", "secret-password", "?username=mailplayer")
	after := time.Now().Add(time.Second)

	for _, tc := range []struct {
		name     string
		sess     session
		username string
		devices  []string
		customID string
		email    string
	}{
		{"device", dev, "devplayer", []string{"device-0123456789"}, "", ""},
		{"custom", cus, "cusplayer", nil, "custom-123", ""},
		{"email", em, "mailplayer", nil, "", "mail@example.com"},
	} {
		a, raw := s.getAccount(t, tc.sess.Token)
		if a.User.ID != tokenClaims(t, tc.sess.Token).UserID {
			t.Errorf("%s: user.id %q, want the token's uid", tc.name, a.User.ID)
		}
		if a.User.Username != tc.username {
			t.Errorf("%s: user.username %q, want %q", tc.name, a.User.Username, tc.username)
		}
		ct, err := time.Parse(time.RFC3339Nano, a.User.CreateTime)
		if err != nil || ct.Before(before) || ct.After(after) {
			t.Errorf("%s: user.create_time %q (%v), want a time of this test", tc.name, a.User.CreateTime, err)
		}
		var devices []string
		for _, d := range a.Devices {
			devices = append(devices, d.ID)
		}
		if strings.Join(devices, ",") != strings.Join(tc.devices, ",") {
			t.Errorf("%s: devices %v, want %v", tc.name, devices, tc.devices)
		}
		if a.CustomID != tc.customID {
			t.Errorf("%s: custom_id %q, want %q", tc.name, a.CustomID, tc.customID)
		}
		if a.Email != tc.email {
			t.Errorf("%s: email %q, want %q", tc.name, a.Email, tc.email)
		}
		// Nothing about the password leaves the server.
		lower := strings.ToLower(string(raw))
		for _, leak := range []string{"password", "hash", "$2a$", "$2b$", "secret-password"} {
			if strings.Contains(lower, leak) {
				t.Errorf("%s: account JSON contains %q: %s", tc.name, leak, raw)
			}
		}
		// Empty fields are omitted, as Nakama's gateway does.
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		if _, ok := m["custom_id"]; ok != (tc.customID != "") {
			t.Errorf("%s: custom_id presence %v: %s", tc.name, ok, raw)
		}
		if _, ok := m["email"]; ok != (tc.email != "") {
			t.Errorf("%s: email presence %v: %s", tc.name, ok, raw)
		}
	}
	// HEAD is served for GET routes.
	if r := s.do(t, http.MethodHead, accountRoute, "", "Authorization", bearer(dev.Token)); r.status != http.StatusOK {
		t.Errorf("HEAD /v2/account: %d", r.status)
	}
}
