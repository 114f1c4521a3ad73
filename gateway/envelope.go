package gateway

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/heroiclabs/nakama-common/rtapi"
)

// Nakama's realtime error codes (rtapi.Error_Code) that the socket answers with.
const (
	errUnrecognized = int32(rtapi.Error_UNRECOGNIZED_PAYLOAD) // 1: a message type the gateway does not handle
	errMissing      = int32(rtapi.Error_MISSING_PAYLOAD)      // 2: an envelope without a message
	errBadInput     = int32(rtapi.Error_BAD_INPUT)            // 3: a malformed envelope or field types
)

// maxErrorDetail caps the parser detail echoed in a malformed-message error.
const maxErrorDetail = 200

// handleEnvelope handles one envelope from the client, in the socket's format (json or
// protobuf). It returns a close code and reason when the socket must close; 0 keeps it open.
//
// Which errors close the socket follows Nakama (server/session_ws.go and pipeline.go): a payload
// that does not parse closes the socket, and so does an envelope whose message is missing or not
// recognised (Nakama's ProcessRequest returns false and the read loop ends). Nakama closes a
// malformed payload without a word; the gateway sends an error envelope first so that the client
// learns why. The close code is CloseProtocolError.
func (c *socketConn) handleEnvelope(data []byte) (code int, reason string) {
	var env rtapi.Envelope
	if err := c.format.unmarshal(data, &env); err != nil {
		detail := err.Error()
		if len(detail) > maxErrorDetail {
			detail = detail[:maxErrorDetail]
			for !utf8.ValidString(detail) {
				detail = detail[:len(detail)-1]
			}
		}
		c.sendError("", errBadInput, "Malformed message: "+detail)
		return CloseProtocolError, reasonMalformed
	}
	switch env.Message.(type) {
	case *rtapi.Envelope_Ping:
		if c.format == formatJSON {
			c.Send(appendPong(nil, env.Cid))
		} else {
			c.sendEnvelope(&rtapi.Envelope{Cid: env.Cid, Message: &rtapi.Envelope_Pong{Pong: &rtapi.Pong{}}})
		}
	case *rtapi.Envelope_StatusFollow, *rtapi.Envelope_StatusUnfollow, *rtapi.Envelope_StatusUpdate:
		c.handleStatus(&env) // status.go
	case *rtapi.Envelope_Pong:
		// The answer to an envelope ping; the gateway sends none, but a pong is harmless.
	case nil:
		c.sendError(env.Cid, errMissing, "Missing message.")
		return CloseProtocolError, reasonMissing
	default:
		c.sendError(env.Cid, errUnrecognized, "Unrecognized message.")
		return CloseProtocolError, reasonUnrecognized
	}
	return 0, ""
}

// sendError queues Nakama's {"cid","error":{"code","message"}} envelope.
func (c *socketConn) sendError(cid string, code int32, message string) {
	c.sendEnvelope(&rtapi.Envelope{Cid: cid, Message: &rtapi.Envelope_Error{
		Error: &rtapi.Error{Code: code, Message: message},
	}})
}

// appendPong appends {"cid":cid,"pong":{}} (cid omitted when empty), the same JSON protojson
// gives for the envelope, without its reflection: it answers every client heartbeat.
func appendPong(dst []byte, cid string) []byte {
	if cid == "" {
		return append(dst, `{"pong":{}}`...)
	}
	dst = append(dst, `{"cid":`...)
	dst = appendJSONString(dst, cid)
	return append(dst, `,"pong":{}}`...)
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b == '"' || b == '\\' || b >= utf8.RuneSelf {
			q, _ := json.Marshal(s) // a string always marshals
			return append(dst, q...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
