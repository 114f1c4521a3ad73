package main

import (
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
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Post(base+"/console/api/login", "application/json",
		strings.NewReader(`{"username":"`+user+`","password":"`+password+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
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
	if code := consoleLogin(t, api, "admin", password); code != 200 {
		t.Errorf("generated password: %d", code)
	}
	r.logLine(t, "console login")
	r.cancel()
	r.wait(t, 5*time.Second)
	out := r.stderr.String()
	if n := strings.Count(out, password); n != 1 {
		t.Errorf("the password appears %d times on stderr, want once", n)
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
