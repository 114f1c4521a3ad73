package loadtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// userWideLead is how far ahead of the user-wide disconnect calls the workers are told when
// they will be made, so that each socket's close is timed from the call.
const userWideLead = 300 * time.Millisecond

// userWideDisconnect is the disconnect scenario by "user-wide": the coordinator learns the
// shared users' ids (authenticating their devices), tells every worker the moment it will
// call, and at that moment asks the server API on APITarget to disconnect each user once
// (POST /v2/server/users/{user_id}/disconnect, ActInFlight at once); each user's sockets on
// every node must close. The workers time each close from the call; the calls' own latencies
// and answers are the coordinator's measurements.
func userWideDisconnect(ctx context.Context, cfg Config, rep *Report, send func(string), waitAll func(string, time.Duration) error) error {
	coord := &WorkerResult{Index: -1, Errors: map[string]int64{}, Counts: map[string]int64{}, Hists: map[string]*Histogram{}}
	rep.coordinator = coord
	var mu sync.Mutex
	client := &http.Client{Timeout: cfg.Timeout}
	defer client.CloseIdleConnections()
	ids := make([]string, cfg.Users)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.ServerKey+":"))
	for u := range ids {
		var out struct {
			Token string `json:"token"`
		}
		body := fmt.Sprintf(`{"id":%q}`, deviceID(rep.RunID, u, cfg.Users))
		status, _, err := postJSON(ctx, client, cfg.Targets[0]+"/v2/account/authenticate/device?create=true", basic, []byte(body), &out)
		if err != nil || status != http.StatusOK || tokenUserID(out.Token) == "" {
			return fmt.Errorf("user-wide disconnect: learn the id of user %d: HTTP %d %v", u, status, err)
		}
		ids[u] = tokenUserID(out.Token)
	}
	callAt := time.Now().Add(userWideLead)
	send(cmdAct + " " + strconv.FormatInt(callAt.UnixNano(), 10))
	sleepCtx(ctx, time.Until(callAt))
	authz := "Bearer " + cfg.HTTPKey
	sem := make(chan struct{}, max(cfg.ActInFlight, 1))
	var wg sync.WaitGroup
	for _, id := range ids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			var out struct {
				Disconnected int64 `json:"disconnected"`
			}
			t0 := time.Now()
			status, kind, err := postJSON(ctx, client, cfg.APITarget+"/v2/server/users/"+url.PathEscape(id)+"/disconnect", authz, []byte(`{"reason":"load test"}`), &out)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				coord.Errors["disconnect_"+kind]++
			case status != http.StatusOK:
				coord.Errors[fmt.Sprintf("disconnect_http_%d", status)]++
			default:
				if coord.Hists[HistDisconnectAPI] == nil {
					coord.Hists[HistDisconnectAPI] = &Histogram{}
				}
				coord.Hists[HistDisconnectAPI].RecordDuration(time.Since(t0))
				coord.Counts[CountDisconnectAck] += out.Disconnected
			}
		}()
	}
	wg.Wait()
	if coord.Hists[HistDisconnectAPI] == nil { // every call failed: no close will come
		send(cmdAbort)
	}
	return waitAll("acted", cfg.PhaseTimeout)
}

// postJSON POSTs body with the Authorization header authz and decodes a 200 answer into out
// (at most 64 KiB of it). On failure it says which kind: "request", "transport" or
// "bad_response"; the caller judges the status.
func postJSON(ctx context.Context, client *http.Client, u, authz string, body []byte, out any) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, "request", err
	}
	req.Header.Set("Authorization", authz)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "transport", err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64*1024))
	resp.Body.Close()
	if err != nil {
		return 0, "transport", err
	}
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return 0, "bad_response", fmt.Errorf("decode answer: %w", err)
		}
	}
	return resp.StatusCode, "", nil
}

// awaitUserWide is a worker's part of the user-wide disconnect: every held socket's close is
// timed from callAt, and the worker waits for them all (up to Timeout after callAt), or until
// the coordinator says every call failed (cmdAbort). It reports true when told to stop.
func (w *worker) awaitUserWide(ctx context.Context, callAt time.Time, cmds <-chan string) bool {
	var held []*sock
	for _, c := range w.clients {
		if s := c.cur.Load(); s != nil {
			c.discAt.Store(callAt.UnixNano())
			held = append(held, s)
		}
	}
	t := time.NewTimer(time.Until(callAt.Add(w.plan.Timeout)))
	defer t.Stop()
	for _, s := range held {
		select {
		case <-s.done:
		case <-t.C:
			for _, s := range held {
				select {
				case <-s.done:
				default:
					w.countErr("disconnect_close_timeout")
				}
			}
			return false
		case c, ok := <-cmds:
			if !ok || c == cmdStop {
				return true
			}
			if c == cmdAbort {
				for _, c := range w.clients {
					c.discAt.Store(0)
				}
				return false
			}
		case <-ctx.Done():
			return false
		}
	}
	return false
}
