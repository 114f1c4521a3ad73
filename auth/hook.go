package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// BeforeAuthRequest is what the before-authenticate webhook receives as its JSON body. It never
// carries the password.
type BeforeAuthRequest struct {
	Provider Provider          `json:"provider"`
	ID       string            `json:"id,omitempty"`
	Email    string            `json:"email,omitempty"`
	Username string            `json:"username,omitempty"`
	Create   bool              `json:"create"`
	Vars     map[string]string `json:"vars,omitempty"`
	ClientIP string            `json:"client_ip,omitempty"`
}

// BeforeAuthResponse is what a 2xx answer from the webhook may contain. Vars are merged over
// the client's (the hook's value wins on a shared key); a non-empty Username replaces the
// requested one and is validated like it.
type BeforeAuthResponse struct {
	Vars     map[string]string `json:"vars,omitempty"`
	Username string            `json:"username,omitempty"`
}

// hookRejection is the optional JSON body of a 4xx answer: its message reaches the client.
type hookRejection struct {
	Message string `json:"message"`
}

const maxHookResponse = 64 << 10

// beforeAuthHook calls the game backend before every authentication, so it can veto a login or
// add session variables, as Nakama's before-authenticate hooks do in-process.
type beforeAuthHook struct {
	url    string
	key    string
	client *http.Client
}

func newBeforeAuthHook(url, key string, timeout time.Duration) *beforeAuthHook {
	if url == "" {
		return nil
	}
	return &beforeAuthHook{url: url, key: key, client: &http.Client{Timeout: timeout}}
}

// call asks the hook about req. A 4xx answer rejects the login (code 7 with the hook's
// message); a transport failure, timeout or 5xx fails closed with code 14, since letting a
// login through unchecked could bypass the backend's bans.
func (h *beforeAuthHook) call(ctx context.Context, req *BeforeAuthRequest) (*BeforeAuthResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, internalError("Error calling authentication hook.", fmt.Errorf("failed to encode hook request: %w", err))
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return nil, internalError("Error calling authentication hook.", fmt.Errorf("failed to build hook request: %w", err))
	}
	hr.Header.Set("Content-Type", "application/json")
	if h.key != "" {
		hr.Header.Set("Authorization", "Bearer "+h.key)
	}
	resp, err := h.client.Do(hr)
	if err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: "Authentication hook unavailable.", Cause: fmt.Errorf("failed to call hook: %w", err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxHookResponse))
	if err != nil {
		return nil, &Error{Code: CodeUnavailable, Message: "Authentication hook unavailable.", Cause: fmt.Errorf("failed to read hook response: %w", err)}
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		out := new(BeforeAuthResponse)
		if len(bytes.TrimSpace(data)) == 0 {
			return out, nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return nil, &Error{Code: CodeUnavailable, Message: "Authentication hook unavailable.", Cause: fmt.Errorf("failed to decode hook response: %w", err)}
		}
		return out, nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		var rej hookRejection
		_ = json.Unmarshal(data, &rej)
		if rej.Message == "" {
			rej.Message = "Authentication rejected."
		}
		return nil, newError(CodePermissionDenied, rej.Message)
	default:
		return nil, &Error{Code: CodeUnavailable, Message: "Authentication hook unavailable.", Cause: errors.New("hook answered " + resp.Status)}
	}
}
