package gateway_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const (
	deviceRoute = "/v2/account/authenticate/device"
	customRoute = "/v2/account/authenticate/custom"
	emailRoute  = "/v2/account/authenticate/email"
)

func TestAuthenticate(t *testing.T) {
	runBackends(t, []backendTest{
		{"CreateThenExisting", testAuthCreateThenExisting},
		{"CreateFalseUnknown", testAuthCreateFalseUnknown},
		{"CreateParam", testAuthCreateParam},
		{"IDLengthBounds", testAuthIDLengthBounds},
		{"IDCharacters", testAuthIDCharacters},
		{"MissingID", testAuthMissingID},
		{"Username", testAuthUsername},
		{"UsernameInvalid", testAuthUsernameInvalid},
		{"UsernameTaken", testAuthUsernameTaken},
		{"GeneratedUsername", testAuthGeneratedUsername},
		{"TrailingQuerySeparators", testAuthTrailingQuerySeparators},
		{"EmailValidation", testAuthEmailValidation},
		{"EmailLowercased", testAuthEmailLowercased},
		{"WrongPassword", testAuthWrongPassword},
		{"UsernameLogin", testAuthUsernameLogin},
		{"ServerKey", testAuthServerKey},
		{"RateLimitPerAccount", testAuthRateLimitPerAccount},
		{"RateLimitPerIP", testAuthRateLimitPerIP},
		{"RequestBody", testAuthRequestBody},
	})
}

// testAuthCreateThenExisting: each provider creates the account on first use (created:true)
// and finds the same one after (created omitted), with the same user id.
func testAuthCreateThenExisting(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	for _, tc := range []struct{ route, body string }{
		{deviceRoute, `{"id":"device-0123456789"}`},
		{customRoute, `{"id":"custom-123"}`},
		{emailRoute, `{"email":"player@example.com","password":"correct horse"}`},
	} {
		first := mustSession(t, s.post(t, tc.route, tc.body))
		wantCreated(t, first, true)
		again := mustSession(t, s.post(t, tc.route, tc.body))
		wantCreated(t, again, false)
		// create=false finds it too, and says nothing about creation.
		noCreate := mustSession(t, s.post(t, tc.route+"?create=false", tc.body))
		wantCreated(t, noCreate, false)
		uid := tokenClaims(t, first.Token).UserID
		if got := tokenClaims(t, again.Token).UserID; got != uid {
			t.Errorf("%s: second login uid %s, want %s", tc.route, got, uid)
		}
		if got := tokenClaims(t, noCreate.Token).UserID; got != uid {
			t.Errorf("%s: create=false login uid %s, want %s", tc.route, got, uid)
		}
	}
	// The three identities made three accounts.
	d := tokenClaims(t, s.authDevice(t, "device-0123456789", "").Token).UserID
	c := tokenClaims(t, mustSession(t, s.post(t, customRoute, `{"id":"custom-123"}`)).Token).UserID
	if d == c {
		t.Errorf("device and custom logins share user id %s", d)
	}
}

func testAuthCreateFalseUnknown(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	for _, tc := range []struct{ route, body string }{
		{deviceRoute, `{"id":"unknown-device-id"}`},
		{customRoute, `{"id":"unknown-custom"}`},
		{emailRoute, `{"email":"nobody@example.com","password":"password1"}`},
	} {
		wantError(t, s.post(t, tc.route+"?create=false", tc.body), http.StatusNotFound, 5, "User account not found.")
		// Nothing was created on the way.
		wantError(t, s.post(t, tc.route+"?create=false", tc.body), http.StatusNotFound, 5, "User account not found.")
	}
}

func testAuthCreateParam(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	for _, v := range []string{"maybe", "yes", "2", "tru"} {
		r := s.post(t, deviceRoute+"?create="+v, `{"id":"device-0123456789"}`)
		wantError(t, r, http.StatusBadRequest, 3, "Invalid create parameter, expected true or false.")
	}
	// An empty value is absent, which means true.
	wantCreated(t, mustSession(t, s.post(t, deviceRoute+"?create=", `{"id":"device-aaaaaaaaaa"}`)), true)
	wantCreated(t, mustSession(t, s.post(t, deviceRoute+"?create=true", `{"id":"device-bbbbbbbbbb"}`)), true)
	wantCreated(t, mustSession(t, s.post(t, deviceRoute+"?create=1", `{"id":"device-cccccccccc"}`)), true)
	wantError(t, s.post(t, deviceRoute+"?create=0", `{"id":"device-dddddddddd"}`), http.StatusNotFound, 5, "User account not found.")
}

func testAuthIDLengthBounds(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	for _, tc := range []struct {
		route, label string
		n            int
		ok           bool
	}{
		{deviceRoute, "Device ID invalid, must be 10-128 bytes.", 9, false},
		{deviceRoute, "", 10, true},
		{deviceRoute, "", 128, true},
		{deviceRoute, "Device ID invalid, must be 10-128 bytes.", 129, false},
		{customRoute, "Custom ID invalid, must be 6-128 bytes.", 5, false},
		{customRoute, "", 6, true},
		{customRoute, "", 128, true},
		{customRoute, "Custom ID invalid, must be 6-128 bytes.", 129, false},
	} {
		id := strings.Repeat("x", tc.n)
		r := s.post(t, tc.route, `{"id":"`+id+`"}`)
		if tc.ok {
			sess := mustSession(t, r)
			wantCreated(t, sess, true)
			continue
		}
		wantError(t, r, http.StatusBadRequest, 3, tc.label)
	}
	// Length is in bytes: 5 two-byte runes are 10 bytes, a valid device id.
	mustSession(t, s.post(t, deviceRoute, `{"id":"ééééé"}`))
	mustSession(t, s.post(t, customRoute, `{"id":"ééé"}`))
	wantError(t, s.post(t, deviceRoute, `{"id":"éééé"}`), http.StatusBadRequest, 3, "Device ID invalid, must be 10-128 bytes.")
}

func testAuthIDCharacters(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	for _, tc := range []struct{ route, id, msg string }{
		{deviceRoute, "device 0123456789", "Device ID invalid, no spaces or control characters allowed."},
		{deviceRoute, `device\t0123456789`, "Device ID invalid, no spaces or control characters allowed."},
		{deviceRoute, `device\n0123456789`, "Device ID invalid, no spaces or control characters allowed."},
		{deviceRoute, `device\u00000123456789`, "Device ID invalid, no spaces or control characters allowed."},
		{deviceRoute, `device\u007f0123456789`, "Device ID invalid, no spaces or control characters allowed."},
		{deviceRoute, " device0123456789", "Device ID invalid, no spaces or control characters allowed."},
		// Characters are checked before length: a short id with a space says so.
		{deviceRoute, "a b", "Device ID invalid, no spaces or control characters allowed."},
		{customRoute, "custom 123", "Custom ID invalid, no spaces or control characters allowed."},
		{customRoute, `custom\u0001123`, "Custom ID invalid, no spaces or control characters allowed."},
		{customRoute, "custom123 ", "Custom ID invalid, no spaces or control characters allowed."},
	} {
		wantError(t, s.post(t, tc.route, `{"id":"`+tc.id+`"}`), http.StatusBadRequest, 3, tc.msg)
	}
	// Punctuation and non-ASCII are fine.
	mustSession(t, s.post(t, deviceRoute, `{"id":"dev:ice/01-23_45.67"}`))
	mustSession(t, s.post(t, customRoute, `{"id":"пользователь"}`))
}

func testAuthMissingID(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	for _, body := range []string{"", "{}", `{"id":""}`, `{"vars":{"a":"b"}}`} {
		wantError(t, s.post(t, deviceRoute, body), http.StatusBadRequest, 3, "Device ID is required.")
		wantError(t, s.post(t, customRoute, body), http.StatusBadRequest, 3, "Custom ID is required.")
	}
	// With no body at all Nakama's account is nil and it asks for both; with an empty object
	// it asks for the password first.
	wantError(t, s.post(t, emailRoute, ""), http.StatusBadRequest, 3, "Email address and password is required.")
	wantError(t, s.post(t, emailRoute, "{}"), http.StatusBadRequest, 3, "Password must be at least 8 characters long.")
	wantError(t, s.post(t, emailRoute, `{"password":"password1"}`), http.StatusBadRequest, 3,
		"Username is required when email address is not supplied.")
}

func testAuthUsername(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	sess := s.authDevice(t, "device-0123456789", "?username=alice")
	if got := tokenClaims(t, sess.Token).Username; got != "alice" {
		t.Errorf("usn %q, want alice", got)
	}
	acct, _ := s.getAccount(t, sess.Token)
	if acct.User.Username != "alice" {
		t.Errorf("account username %q, want alice", acct.User.Username)
	}
	// An existing account keeps its username whatever the query asks for.
	again := s.authDevice(t, "device-0123456789", "?username=bob")
	if got := tokenClaims(t, again.Token).Username; got != "alice" {
		t.Errorf("existing account usn %q, want alice", got)
	}
	// Spaces, punctuation and non-ASCII are allowed in usernames; 128 bytes is the limit.
	for i, u := range []string{"Jane Doe", "ünïcødé_näme", "a", strings.Repeat("u", 128)} {
		sess := mustSession(t, s.post(t, customRoute+"?username="+query(u), `{"id":"custom-id-`+strconv.Itoa(i)+`"}`))
		if got := tokenClaims(t, sess.Token).Username; got != u {
			t.Errorf("usn %q, want %q", got, u)
		}
	}
	// The email provider takes the username from the query too.
	e := s.authEmail(t, "named@example.com", "password1", "?username=emailuser")
	if got := tokenClaims(t, e.Token).Username; got != "emailuser" {
		t.Errorf("email usn %q, want emailuser", got)
	}
}

func testAuthUsernameInvalid(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	const control = "Username invalid, no spaces or control characters allowed."
	const length = "Username invalid, must be 1-128 bytes."
	for _, tc := range []struct{ username, msg string }{
		{strings.Repeat("u", 129), length},
		{strings.Repeat("é", 65), length},
		{"bad\nname", control},
		{"bad\tname", control},
		{"bad\x00name", control},
		{"bad\x7fname", control},
		{"\rname", control},
	} {
		q := "?username=" + query(tc.username)
		wantError(t, s.post(t, deviceRoute+q, `{"id":"device-0123456789"}`), http.StatusBadRequest, 3, tc.msg)
		wantError(t, s.post(t, customRoute+q, `{"id":"custom-123"}`), http.StatusBadRequest, 3, tc.msg)
		wantError(t, s.post(t, emailRoute+q, `{"email":"player@example.com","password":"password1"}`), http.StatusBadRequest, 3, tc.msg)
	}
	// No account was created by the refused attempts.
	wantError(t, s.post(t, deviceRoute+"?create=false", `{"id":"device-0123456789"}`), http.StatusNotFound, 5, "User account not found.")
}

func testAuthUsernameTaken(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	first := s.authDevice(t, "device-0123456789", "?username=taken")
	const msg = "Username is already in use."
	wantError(t, s.post(t, deviceRoute+"?username=taken", `{"id":"device-other-one"}`), http.StatusConflict, 6, msg)
	wantError(t, s.post(t, customRoute+"?username=taken", `{"id":"custom-123"}`), http.StatusConflict, 6, msg)
	wantError(t, s.post(t, emailRoute+"?username=taken", `{"email":"taken@example.com","password":"password1"}`), http.StatusConflict, 6, msg)
	// The refused identities were not linked, and the owner still logs in.
	wantError(t, s.post(t, deviceRoute+"?create=false", `{"id":"device-other-one"}`), http.StatusNotFound, 5, "User account not found.")
	again := s.authDevice(t, "device-0123456789", "?username=taken")
	if tokenClaims(t, again.Token).UserID != tokenClaims(t, first.Token).UserID {
		t.Error("owner of the username got another account")
	}
}

var generatedUsername = regexp.MustCompile(`^[A-Za-z]{10}$`)

func testAuthGeneratedUsername(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	seen := map[string]bool{}
	for _, tc := range []struct{ route, body string }{
		{deviceRoute, `{"id":"device-0123456789"}`},
		{deviceRoute + "?username=", `{"id":"device-9876543210"}`},
		{customRoute, `{"id":"custom-123"}`},
		{emailRoute, `{"email":"gen@example.com","password":"password1"}`},
	} {
		sess := mustSession(t, s.post(t, tc.route, tc.body))
		usn := tokenClaims(t, sess.Token).Username
		if !generatedUsername.MatchString(usn) {
			t.Errorf("%s: generated username %q, want 10 ASCII letters", tc.route, usn)
		}
		if seen[usn] {
			t.Errorf("generated username %q twice", usn)
		}
		seen[usn] = true
		acct, _ := s.getAccount(t, sess.Token)
		if acct.User.Username != usn {
			t.Errorf("account username %q, token usn %q", acct.User.Username, usn)
		}
		// The generated name sticks to the account.
		again := mustSession(t, s.post(t, tc.route, tc.body))
		if got := tokenClaims(t, again.Token).Username; got != usn {
			t.Errorf("second login usn %q, want %q", got, usn)
		}
	}
}

// testAuthTrailingQuerySeparators: some SDKs build URLs ending in "?" or "&".
func testAuthTrailingQuerySeparators(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	wantCreated(t, mustSession(t, s.post(t, deviceRoute+"?", `{"id":"device-trailing-1"}`)), true)
	wantCreated(t, mustSession(t, s.post(t, deviceRoute+"?&", `{"id":"device-trailing-2"}`)), true)
	wantCreated(t, mustSession(t, s.post(t, deviceRoute+"?create=true&", `{"id":"device-trailing-3"}`)), true)
	sess := mustSession(t, s.post(t, customRoute+"?create=true&username=trail&", `{"id":"custom-trailing"}`))
	if got := tokenClaims(t, sess.Token).Username; got != "trail" {
		t.Errorf("usn %q, want trail", got)
	}
	mustSession(t, s.post(t, emailRoute+"?", `{"email":"trail@example.com","password":"password1"}`))
	wantCreated(t, mustSession(t, s.post(t, emailRoute+"?create=false&", `{"email":"trail@example.com","password":"password1"}`)), false)
	wantError(t, s.post(t, deviceRoute+"?create=false&", `{"id":"device-trailing-4"}`), http.StatusNotFound, 5, "User account not found.")
}

func testAuthEmailValidation(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	const (
		format = "Invalid email address format."
		length = "Invalid email address, must be 10-255 bytes."
		chars  = "Invalid email address, no spaces or control characters allowed."
		pw     = "Password must be at least 8 characters long."
	)
	domain := "@example.com" // 12 bytes
	for _, tc := range []struct{ email, password, msg string }{
		{"player.example.com", "password1", format},
		{"player@examplecom", "password1", format},
		{"@example.com", "password1", format},
		{"player@.", "password1", format},
		{"a@b.co", "password1", length},    // 6 bytes
		{"ab@cd.efg", "password1", length}, // 9 bytes
		{strings.Repeat("x", 256-len(domain)) + domain, "password1", length},
		{"play er@example.com", "password1", chars},
		{`player\t@example.com`, "password1", chars},
		{`player@example.com\n`, "password1", chars},
		{"player@example.com", "", pw},
		{"player@example.com", "1234567", pw},
		{"player@example.com", "ééé", pw}, // 6 bytes
	} {
		body := `{"email":"` + tc.email + `","password":"` + tc.password + `"}`
		wantError(t, s.post(t, emailRoute, body), http.StatusBadRequest, 3, tc.msg)
	}
	// The bounds themselves are valid.
	s.authEmail(t, "abc@cd.efg", "12345678", "")
	long := strings.Repeat("y", 255-len(domain)) + domain
	sess := s.authEmail(t, long, "password1", "")
	acct, _ := s.getAccount(t, sess.Token)
	if acct.Email != long {
		t.Errorf("email %q, want the 255-byte address", acct.Email)
	}
}

func testAuthEmailLowercased(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	first := s.authEmail(t, "Alice.Smith@Example.COM", "password1", "")
	wantCreated(t, first, true)
	acct, _ := s.getAccount(t, first.Token)
	if acct.Email != "alice.smith@example.com" {
		t.Errorf("stored email %q, want alice.smith@example.com", acct.Email)
	}
	uid := tokenClaims(t, first.Token).UserID
	for _, variant := range []string{"alice.smith@example.com", "ALICE.SMITH@EXAMPLE.COM", "aLiCe.SmItH@eXaMpLe.CoM"} {
		sess := s.authEmail(t, variant, "password1", "?create=false")
		wantCreated(t, sess, false)
		if got := tokenClaims(t, sess.Token).UserID; got != uid {
			t.Errorf("%s: uid %s, want %s", variant, got, uid)
		}
	}
	// The password is not lowercased.
	wantError(t, s.post(t, emailRoute, `{"email":"alice.smith@example.com","password":"PASSWORD1"}`),
		http.StatusUnauthorized, 16, "Invalid credentials.")
}

func testAuthWrongPassword(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	s.authEmail(t, "player@example.com", "correct horse", "")
	for _, q := range []string{"", "?create=true", "?create=false"} {
		r := s.post(t, emailRoute+q, `{"email":"player@example.com","password":"wrong horse"}`)
		wantError(t, r, http.StatusUnauthorized, 16, "Invalid credentials.")
	}
	// The right password still works (two failures stay under the default limit of 5).
	wantCreated(t, s.authEmail(t, "player@example.com", "correct horse", ""), false)
}

func testAuthUsernameLogin(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	created := s.authEmail(t, "hero@example.com", "password1", "?username=hero")
	uid := tokenClaims(t, created.Token).UserID

	sess := mustSession(t, s.post(t, emailRoute+"?username=hero", `{"password":"password1"}`))
	wantCreated(t, sess, false)
	if c := tokenClaims(t, sess.Token); c.UserID != uid || c.Username != "hero" {
		t.Errorf("username login claims %+v, want uid %s usn hero", c, uid)
	}
	// An empty email is the same as none.
	mustSession(t, s.post(t, emailRoute+"?username=hero", `{"email":"","password":"password1"}`))

	wantError(t, s.post(t, emailRoute, `{"password":"password1"}`), http.StatusBadRequest, 3,
		"Username is required when email address is not supplied.")
	wantError(t, s.post(t, emailRoute+"?username=hero", `{"password":"wrongpass"}`), http.StatusUnauthorized, 16, "Invalid credentials.")
	wantError(t, s.post(t, emailRoute+"?username=hero", `{"password":"short"}`), http.StatusBadRequest, 3,
		"Password must be at least 8 characters long.")
	// Username login never creates, whatever create says.
	for _, q := range []string{"", "&create=true", "&create=false"} {
		wantError(t, s.post(t, emailRoute+"?username=nobody"+q, `{"password":"password1"}`), http.StatusNotFound, 5, "User account not found.")
	}
	// An account without a password (made by a device) cannot log in by username.
	s.authDevice(t, "device-0123456789", "?username=devuser")
	wantError(t, s.post(t, emailRoute+"?username=devuser", `{"password":"password1"}`), http.StatusUnauthorized, 16, "Invalid credentials.")
}

func testAuthServerKey(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	good := s.authDevice(t, "device-0123456789", "")
	bodies := map[string]string{
		deviceRoute:                   `{"id":"device-0123456789"}`,
		customRoute:                   `{"id":"custom-123"}`,
		emailRoute:                    `{"email":"player@example.com","password":"password1"}`,
		"/v2/account/session/refresh": `{"token":"` + good.RefreshToken + `"}`,
	}
	enc := func(s string) string { return "Basic " + b64(s) }
	for route, body := range bodies {
		wantError(t, s.do(t, http.MethodPost, route, body), http.StatusUnauthorized, 16, "Server key required")
		for _, h := range []string{
			basicAuth("wrong-key"),
			basicAuth(testServerKey + "x"),
			basicAuth(testServerKey[:len(testServerKey)-1]),
			basicAuth(""),
			enc(testServerKey),       // no colon
			"Basic !!!not-base64!!!", // malformed
			"Basic",
			"Bearer " + testServerKey,
			bearer(good.Token),
			testServerKey,
		} {
			wantError(t, s.do(t, http.MethodPost, route, body, "Authorization", h), http.StatusUnauthorized, 16, "Server key invalid")
		}
		// The password half of Basic auth is ignored, as in Nakama.
		if r := s.do(t, http.MethodPost, route, body, "Authorization", enc(testServerKey+":anything")); r.status != http.StatusOK {
			t.Errorf("%s with a password after the key: status %d; body %s", route, r.status, r.body)
		}
	}
	// Nakama's default key is not accepted once another is configured.
	wantError(t, s.do(t, http.MethodPost, deviceRoute, bodies[deviceRoute], "Authorization", basicAuth("defaultkey")),
		http.StatusUnauthorized, 16, "Server key invalid")
}

func testAuthRateLimitPerAccount(t *testing.T, b backend) {
	cfg := testConfig()
	cfg.Auth.LoginFailuresPerAccount = 2
	cfg.Auth.LoginFailuresPerIP = 100
	s := startServer(t, cfg, b.stores(t))
	s.authEmail(t, "victim@example.com", "password1", "?username=victim")
	wrong := `{"email":"victim@example.com","password":"wrongpass"}`
	wantError(t, s.post(t, emailRoute, wrong), http.StatusUnauthorized, 16, "Invalid credentials.")
	wantError(t, s.post(t, emailRoute, wrong), http.StatusUnauthorized, 16, "Invalid credentials.")
	// Past the limit even the right password, in any letter case, is refused.
	wantError(t, s.post(t, emailRoute, wrong), http.StatusTooManyRequests, 8, "Try again later.")
	wantError(t, s.post(t, emailRoute, `{"email":"victim@example.com","password":"password1"}`), http.StatusTooManyRequests, 8, "Try again later.")
	wantError(t, s.post(t, emailRoute, `{"email":"VICTIM@example.com","password":"password1"}`), http.StatusTooManyRequests, 8, "Try again later.")
	// Username logins are limited per username the same way.
	wrongByName := `{"password":"wrongpass"}`
	wantError(t, s.post(t, emailRoute+"?username=victim", wrongByName), http.StatusUnauthorized, 16, "Invalid credentials.")
	wantError(t, s.post(t, emailRoute+"?username=victim", wrongByName), http.StatusUnauthorized, 16, "Invalid credentials.")
	wantError(t, s.post(t, emailRoute+"?username=victim", `{"password":"password1"}`), http.StatusTooManyRequests, 8, "Try again later.")

	// Other accounts from the same client are unaffected, and a good login clears the count.
	s.authEmail(t, "other@example.com", "password1", "")
	for range 3 {
		wantError(t, s.post(t, emailRoute, `{"email":"other@example.com","password":"wrongpass"}`), http.StatusUnauthorized, 16, "Invalid credentials.")
		s.authEmail(t, "other@example.com", "password1", "")
	}
	// Device logins are never limited.
	for range 5 {
		s.authDevice(t, "device-0123456789", "")
	}
}

func testAuthRateLimitPerIP(t *testing.T, b backend) {
	cfg := testConfig()
	cfg.Auth.LoginFailuresPerAccount = 100
	cfg.Auth.LoginFailuresPerIP = 3
	cfg.TrustForwardedFor = true
	s := startServer(t, cfg, b.stores(t))
	from := func(ip, route, body string) response {
		return s.do(t, http.MethodPost, route, body, "Authorization", basicAuth(testServerKey), "X-Forwarded-For", ip)
	}
	for _, e := range []string{"one@example.com", "two@example.com", "three@example.com", "four@example.com"} {
		mustSession(t, from("198.51.100.1", emailRoute, `{"email":"`+e+`","password":"password1"}`))
	}
	attacker := "203.0.113.7"
	wantError(t, from(attacker, emailRoute, `{"email":"one@example.com","password":"wrongpass"}`), http.StatusUnauthorized, 16, "Invalid credentials.")
	wantError(t, from(attacker, emailRoute, `{"email":"two@example.com","password":"wrongpass"}`), http.StatusUnauthorized, 16, "Invalid credentials.")
	// An unknown username counts as a failure too.
	wantError(t, from(attacker, emailRoute+"?username=ghost", `{"password":"wrongpass"}`), http.StatusNotFound, 5, "User account not found.")
	// The IP is now blocked, for every account and even with the right password.
	wantError(t, from(attacker, emailRoute, `{"email":"four@example.com","password":"password1"}`), http.StatusTooManyRequests, 8, "Try again later.")
	wantError(t, from("10.0.0.1, "+attacker, emailRoute, `{"email":"three@example.com","password":"password1"}`), http.StatusTooManyRequests, 8, "Try again later.")
	// Other clients are not.
	mustSession(t, from("203.0.113.8", emailRoute, `{"email":"four@example.com","password":"password1"}`))
	mustSession(t, from(attacker+", 203.0.113.9", emailRoute, `{"email":"four@example.com","password":"password1"}`))

	// Without TrustForwardedFor the header is ignored: the TCP peer is the client.
	cfg.TrustForwardedFor = false
	cfg.Auth.LoginFailuresPerIP = 2
	s2 := startServer(t, cfg, b.stores(t))
	s2.authEmail(t, "one@example.com", "password1", "")
	for _, ip := range []string{"192.0.2.1", "192.0.2.2"} {
		r := s2.do(t, http.MethodPost, emailRoute, `{"email":"one@example.com","password":"wrongpass"}`,
			"Authorization", basicAuth(testServerKey), "X-Forwarded-For", ip)
		wantError(t, r, http.StatusUnauthorized, 16, "Invalid credentials.")
	}
	r := s2.do(t, http.MethodPost, emailRoute, `{"email":"one@example.com","password":"password1"}`,
		"Authorization", basicAuth(testServerKey), "X-Forwarded-For", "192.0.2.3")
	wantError(t, r, http.StatusTooManyRequests, 8, "Try again later.")
}

func testAuthRequestBody(t *testing.T, b backend) {
	s := startServer(t, testConfig(), b.stores(t))
	// Exactly the default cap of 262,144 bytes is accepted; one more byte is not.
	pad := func(total int) string {
		head, tail := `{"id":"device-0123456789","vars":{"pad":"`, `"}}`
		return head + strings.Repeat("p", total-len(head)-len(tail)) + tail
	}
	mustSession(t, s.post(t, deviceRoute, pad(262144)))
	wantError(t, s.post(t, deviceRoute, pad(262145)), http.StatusBadRequest, 3, "Request body too large, limit is 262144 bytes.")

	for _, body := range []string{`{"id":`, `not json`, `{"id":"device-0123456789"`, `{"vars":{"a":1}}`, `{"vars":"x"}`, `[]`, `"device-0123456789"`, `{"id":"a"} trailing`} {
		wantErrorPrefix(t, s.post(t, deviceRoute, body), http.StatusBadRequest, 3, "Invalid request body: ")
		wantErrorPrefix(t, s.post(t, emailRoute, body), http.StatusBadRequest, 3, "Invalid request body: ")
		wantErrorPrefix(t, s.post(t, "/v2/account/session/refresh", body), http.StatusBadRequest, 3, "Invalid request body: ")
	}
	// Wrong field types.
	wantErrorPrefix(t, s.post(t, deviceRoute, `{"id":5}`), http.StatusBadRequest, 3, "Invalid request body: ")
	wantErrorPrefix(t, s.post(t, emailRoute, `{"email":["a@example.com"],"password":"password1"}`), http.StatusBadRequest, 3, "Invalid request body: ")
	wantErrorPrefix(t, s.post(t, "/v2/account/session/refresh", `{"token":true}`), http.StatusBadRequest, 3, "Invalid request body: ")
	// Unknown fields are ignored, as Nakama's gateway does.
	wantCreated(t, mustSession(t, s.post(t, deviceRoute, `{"id":"device-unknown-field","extra":{"x":[1,2]}}`)), true)

	// A configured cap applies to every route.
	cfg := testConfig()
	cfg.MaxRequestBytes = 1024
	small := startServer(t, cfg, b.stores(t))
	mustSession(t, small.post(t, deviceRoute, pad(1024)))
	wantError(t, small.post(t, deviceRoute, pad(1025)), http.StatusBadRequest, 3, "Request body too large, limit is 1024 bytes.")
	tok := small.authDevice(t, "device-0123456789", "").Token
	big := `{"token":"` + strings.Repeat("t", 2000) + `"}`
	wantError(t, small.post(t, "/v2/account/session/refresh", big), http.StatusBadRequest, 3, "Request body too large, limit is 1024 bytes.")
	wantError(t, small.do(t, http.MethodPost, "/v2/session/logout", big, "Authorization", bearer(tok)), http.StatusBadRequest, 3, "Request body too large, limit is 1024 bytes.")
}
