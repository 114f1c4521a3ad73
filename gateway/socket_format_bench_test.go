package gateway

import (
	"testing"

	"github.com/heroiclabs/nakama-common/api"
	"github.com/heroiclabs/nakama-common/rtapi"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// benchEnvelopes are the envelopes the socket exchanges, with realistic contents.
func benchEnvelopes() []struct {
	name string
	env  *rtapi.Envelope
} {
	p := func(status string) *rtapi.UserPresence {
		return &rtapi.UserPresence{UserId: "5f8c9a2e-6b1d-4c3e-9f7a-2d4b6e8a0c1f", SessionId: "a3b5c7d9-e1f3-4a5b-8c7d-9e1f3a5b7c9d",
			Username: "PlayerOne", Status: wrapperspb.String(status)}
	}
	return []struct {
		name string
		env  *rtapi.Envelope
	}{
		{"ping", &rtapi.Envelope{Cid: "12", Message: &rtapi.Envelope_Ping{Ping: &rtapi.Ping{}}}},
		{"pong", &rtapi.Envelope{Cid: "12", Message: &rtapi.Envelope_Pong{Pong: &rtapi.Pong{}}}},
		{"status_follow", &rtapi.Envelope{Cid: "13", Message: &rtapi.Envelope_StatusFollow{StatusFollow: &rtapi.StatusFollow{
			UserIds: []string{"5f8c9a2e-6b1d-4c3e-9f7a-2d4b6e8a0c1f", "0b2d4f6a-8c0e-4a2c-9e4a-6c8e0a2c4e6a"}}}}},
		{"status", &rtapi.Envelope{Cid: "13", Message: &rtapi.Envelope_Status{Status: &rtapi.Status{
			Presences: []*rtapi.UserPresence{p("in lobby"), p("")}}}}},
		{"status_update", &rtapi.Envelope{Cid: "14", Message: &rtapi.Envelope_StatusUpdate{StatusUpdate: &rtapi.StatusUpdate{
			Status: wrapperspb.String("playing ranked")}}}},
		{"status_presence_event", &rtapi.Envelope{Message: &rtapi.Envelope_StatusPresenceEvent{StatusPresenceEvent: &rtapi.StatusPresenceEvent{
			Joins: []*rtapi.UserPresence{p("playing ranked")}, Leaves: []*rtapi.UserPresence{p("in lobby")}}}}},
		{"notifications", &rtapi.Envelope{Message: &rtapi.Envelope_Notifications{Notifications: &rtapi.Notifications{
			Notifications: []*api.Notification{{Id: "c2e4a6c8-0a2c-4e6a-8c0e-2a4c6e8a0c2e", Subject: "game_session_closed",
				Content: `{"game_session_id":"7d9f1b3d-5f7b-4d9f-8b1d-3f5b7d9f1b3d","reason":"expired"}`, Code: 101,
				CreateTime: &timestamppb.Timestamp{Seconds: 1764583200}, Persistent: true}}}}}},
		{"error", &rtapi.Envelope{Cid: "15", Message: &rtapi.Envelope_Error{Error: &rtapi.Error{
			Code: errBadInput, Message: "Invalid user identifier"}}}},
	}
}

// BenchmarkEnvelopeEncode is the cost of encoding one envelope in each format (bytes/msg is the
// encoded size).
//
//	go test -run '^$' -bench 'BenchmarkEnvelope(Encode|Decode)' -benchmem -count 6 ./gateway/
func BenchmarkEnvelopeEncode(b *testing.B) {
	for _, e := range benchEnvelopes() {
		for f := range numFormats {
			b.Run(e.name+"/"+f.String(), func(b *testing.B) {
				var size int
				b.ReportAllocs()
				for b.Loop() {
					msg, err := f.marshal(e.env)
					if err != nil {
						b.Fatal(err)
					}
					size = len(msg)
				}
				b.ReportMetric(float64(size), "bytes/msg")
			})
		}
	}
}

// BenchmarkEnvelopeDecode is the cost of decoding one envelope in each format, as the read loop
// does for a client message.
func BenchmarkEnvelopeDecode(b *testing.B) {
	for _, e := range benchEnvelopes() {
		for f := range numFormats {
			msg, err := f.marshal(e.env)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(e.name+"/"+f.String(), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					var env rtapi.Envelope
					if err := f.unmarshal(msg, &env); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(msg)), "bytes/msg")
			})
		}
	}
}
