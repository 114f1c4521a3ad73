package loadtest

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Centrifugo, as a baseline measured in the same run.
//
// ../shared/DESIGN.md set the socket targets against Centrifugo measured on this kind of
// machine, and these machines differ by host and by hour by more than the margins the targets
// leave. So the load tool can load a Centrifugo server too (bench/versus.sh runs both,
// interleaved), and the figures compare as same-run ratios. ProtocolCentrifugo speaks the part
// of Centrifugo's JSON client protocol (v2) that the connect and hold scenarios need:
//   - the pre-phase mints each client's connection token (HS256 with the server's
//     token.hmac_secret_key, sub = the client's user id) instead of authenticating over HTTP;
//   - the socket's first round trip, which the connect time includes, is the connect command
//     and its reply (where sessiongate's is an envelope ping: either way one round trip after
//     the upgrade, and Centrifugo checks the token in it where sessiongate checked it at the
//     upgrade);
//   - while holding, the server's pings (an empty reply, {}) are answered with an empty
//     command ({}), as its clients do; the client sends no pings of its own.

// Protocols the load tool speaks.
const (
	ProtocolSessiongate = "sessiongate" // Nakama's realtime envelope on /ws (the default)
	ProtocolCentrifugo  = "centrifugo"  // Centrifugo's JSON protocol on /connection/websocket
)

// centrifugoTokenTTL is the lifetime of a minted connection token: longer than any run.
const centrifugoTokenTTL = 24 * time.Hour

// validateProtocol checks the protocol and what it supports.
func (c *Config) validateProtocol() error {
	switch c.Protocol {
	case "":
		c.Protocol = ProtocolSessiongate
	case ProtocolSessiongate:
	case ProtocolCentrifugo:
		if c.Scenario != "connect" && c.Scenario != "hold" {
			return fmt.Errorf("protocol centrifugo supports the connect and hold scenarios, not %s", c.Scenario)
		}
		if c.CentrifugoSecret == "" {
			return errors.New("protocol centrifugo needs the server's token HMAC secret (--centrifugo-secret)")
		}
		if c.keepsHold() && c.PingInterval != 0 || c.Status != "" || c.Follow != 0 || c.Users != 0 {
			return errors.New("protocol centrifugo: --ping-interval must be 0 (the server pings; its pings are answered), and --status, --follow and --users are sessiongate's")
		}
	default:
		return fmt.Errorf("unknown protocol %q (%s or %s)", c.Protocol, ProtocolSessiongate, ProtocolCentrifugo)
	}
	return nil
}

// centrifugoToken mints a connection token for user sub, valid until exp.
func centrifugoToken(secret, sub string, exp time.Time) string {
	enc := base64.RawURLEncoding
	claims, _ := json.Marshal(struct {
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
	}{sub, exp.Unix()})
	signed := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signed))
	return signed + "." + enc.EncodeToString(mac.Sum(nil))
}

// centrifugoURL is target's Centrifugo WebSocket endpoint.
func centrifugoURL(target string) string {
	return wsBase(target) + "/connection/websocket"
}

// centrifugoConnectID is the id of the connect command, the socket's first.
const centrifugoConnectID = 1

// centrifugoConnect sends the connect command with token on s and waits for its reply. It
// returns "" or the kind of failure, as await does.
func (w *worker) centrifugoConnect(ctx context.Context, s *sock, token string) string {
	cmd, _ := json.Marshal(map[string]any{"id": centrifugoConnectID, "connect": map[string]string{"token": token, "name": "loadtest"}})
	if err := s.conn.Write(ctx, cmd); err != nil {
		return "_write"
	}
	for {
		msg, kind := readText(ctx, s)
		if kind != "" {
			return kind
		}
		// A message may hold several replies, one JSON object per line.
		for line := range bytes.SplitSeq(msg, []byte("\n")) {
			var reply struct {
				ID    uint32          `json:"id"`
				Error json.RawMessage `json:"error"`
			}
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if err := json.Unmarshal(line, &reply); err != nil {
				return "_bad_reply"
			}
			if reply.ID != centrifugoConnectID {
				continue
			}
			if reply.Error != nil {
				return "_error"
			}
			return ""
		}
	}
}

// centrifugoPong answers the server's pings in msg (empty replies, one per line) with empty
// commands, one message each, as Centrifugo's clients do.
func (w *worker) centrifugoPong(s *sock, msg []byte) {
	for line := range bytes.SplitSeq(msg, []byte("\n")) {
		if string(bytes.TrimSpace(line)) != "{}" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), w.plan.Timeout)
		err := s.conn.Write(ctx, []byte("{}"))
		cancel()
		if err != nil {
			return // the socket is ending: its reader sees why
		}
		w.count(CountServerPingsAnswered, 1)
	}
}
