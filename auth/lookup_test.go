package auth

import (
	"context"
	"slices"
	"testing"
)

func TestLookupUsers(t *testing.T) {
	svc, _ := newTestService(t, nil)
	ctx := context.Background()
	var ids []string
	for _, u := range []string{"alice", "bob"} {
		sess, err := svc.Authenticate(ctx, AuthRequest{Provider: ProviderDevice, ID: "device-lookup-" + u, Username: u, Create: true})
		if err != nil {
			t.Fatal(err)
		}
		c, err := svc.VerifySession(sess.Token)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.UserID)
	}
	const unknown = "00000000-0000-4000-8000-000000000000"
	for _, tc := range []struct {
		name       string
		ids, names []string
		want       []string
	}{
		{"none", nil, nil, []string{}},
		{"ids", []string{ids[1], unknown, ids[0]}, nil, []string{ids[1], ids[0]}},
		{"names", nil, []string{"bob", "nobody", "alice"}, []string{ids[1], ids[0]}},
		{"both, deduplicated", []string{ids[0], ids[0]}, []string{"alice", "bob"}, []string{ids[0], ids[1]}},
		{"names are exact", nil, []string{"ALICE", ""}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := svc.LookupUsers(ctx, tc.ids, tc.names)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("LookupUsers = %v, want %v", got, tc.want)
			}
		})
	}
}
