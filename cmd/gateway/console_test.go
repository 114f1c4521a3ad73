package main

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// consolePasswordLine is the one line that shows a generated console password.
var consolePasswordLine = regexp.MustCompile(`(?m)^console: http://\S+/console user "admin" password (\S+) \(generated`)

func consoleLogin(t *testing.T, base, user, password string) int {
	t.Helper()
	code, _, _ := consoleLoginSession(t, base, user, password)
	return code
}

// consoleLoginSession logs in and returns the status, the session cookie and the CSRF token.
func consoleLoginSession(t *testing.T, base, user, password string) (int, *http.Cookie, string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Post(base+"/console/api/login", "application/json",
		strings.NewReader(`{"username":"`+user+`","password":"`+password+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var me struct {
		CSRFToken string `json:"csrf_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&me)
	for _, ck := range resp.Cookies() {
		if ck.Name == "sessiongate_console" {
			return resp.StatusCode, ck, me.CSRFToken
		}
	}
	return resp.StatusCode, nil, ""
}

// TestRunConsoleGeneratedPassword: without --console-password the node prints a generated
// password once, on a line of its own, which logs in; no log line holds it, nor the failed
// login's attempt.
func TestRunConsoleGeneratedPassword(t *testing.T) {
	r := startRun(t, testArgs, env(nil))
	api := "http://" + r.logLine(t, "api listening")["addr"].(string)
	m := consolePasswordLine.FindAllStringSubmatch(r.stderr.String(), -1)
	if len(m) != 1 || len(m[0][1]) < 20 {
		t.Fatalf("want one generated password line, got %q in:\n%s", m, r.stderr)
	}
	password := m[0][1]
	if code := consoleLogin(t, api, "admin", "wrong-password-attempt"); code != 401 {
		t.Errorf("wrong password: %d", code)
	}
	code, cookie, csrf := consoleLoginSession(t, api, "admin", password)
	if code != 200 || cookie == nil || csrf == "" {
		t.Fatalf("generated password: %d, cookie %v", code, cookie)
	}
	r.logLine(t, "console login")

	// An action is logged with the operator, the action, its target and outcome.
	const uid = "00000000-0000-4000-8000-000000000000"
	req, _ := http.NewRequest(http.MethodPost, api+"/console/api/users/"+uid+"/logout", strings.NewReader("{}"))
	req.AddCookie(cookie)
	req.Header.Set("X-CSRF-Token", csrf)
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	client.CloseIdleConnections()
	if resp.StatusCode != 200 {
		t.Fatalf("logout user: %d", resp.StatusCode)
	}
	line := r.logLine(t, "console action")
	for k, want := range map[string]any{"console_user": "admin", "action": "logout_user", "user_id": uid, "ok": true} {
		if line[k] != want {
			t.Errorf("console action log %s=%v, want %v (%v)", k, line[k], want, line)
		}
	}

	r.cancel()
	r.wait(t, 5*time.Second)
	out := r.stderr.String()
	if n := strings.Count(out, password); n != 1 {
		t.Errorf("the password appears %d times on stderr, want once", n)
	}
	if strings.Contains(out, cookie.Value) || strings.Contains(out, csrf) {
		t.Error("the session cookie or CSRF token reached the log")
	}
	if strings.Contains(out, "wrong-password-attempt") {
		t.Error("a failed login's password reached the log")
	}
}

// TestRunConsoleFlags: a chosen password is never printed; --console=false serves no console.
func TestRunConsoleFlags(t *testing.T) {
	r := startRun(t, append([]string{"--console-username", "ops"}, testArgs...), env(map[string]string{"SESSIONGATE_CONSOLE_PASSWORD": "chosen-console-password"}))
	api := "http://" + r.logLine(t, "api listening")["addr"].(string)
	if code := consoleLogin(t, api, "ops", "chosen-console-password"); code != 200 {
		t.Errorf("chosen password: %d", code)
	}
	r.cancel()
	r.wait(t, 5*time.Second)
	if out := r.stderr.String(); strings.Contains(out, "chosen-console-password") || consolePasswordLine.MatchString(out) {
		t.Errorf("a chosen password was printed:\n%s", out)
	}

	off := startRun(t, append([]string{"--console=false"}, testArgs...), env(nil))
	api = "http://" + off.logLine(t, "api listening")["addr"].(string)
	if code, _ := get(t, api+"/console"); code != 404 {
		t.Errorf("--console=false: /console answered %d", code)
	}
	if consolePasswordLine.MatchString(off.stderr.String()) {
		t.Error("--console=false printed a password")
	}
}
