package auth

import (
	"context"
	"testing"
)

func TestFindAccounts(t *testing.T) {
	svc, _ := newTestService(t, nil)
	ctx := context.Background()
	uid := func(req AuthRequest) string {
		t.Helper()
		req.Create = true
		sess, err := svc.Authenticate(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		c, err := svc.VerifySession(sess.Token)
		if err != nil {
			t.Fatal(err)
		}
		return c.UserID
	}
	dev := uid(AuthRequest{Provider: ProviderDevice, ID: "device-find-0001", Username: "finder"})
	cus := uid(AuthRequest{Provider: ProviderCustom, ID: "custom-find-1", Username: "device-find-0001"})
	mail := uid(AuthRequest{Provider: ProviderEmail, Email: "Find.Me@Example.com", Password: "long enough password", Username: "mailer"})
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"", nil},
		{"  ", nil},
		{dev, []string{dev}},
		{"finder", []string{dev}},
		{"custom-find-1", []string{cus}},
		{"find.me@example.com", []string{mail}},
		{"FIND.ME@EXAMPLE.COM", []string{mail}},
		{"mailer", []string{mail}},
		// A username of one account that is the device id of another: both, username first.
		{"device-find-0001", []string{cus, dev}},
		{"00000000-0000-4000-8000-000000000000", nil},
		{"nobody", nil},
	} {
		got, err := svc.FindAccounts(ctx, tc.q)
		if err != nil {
			t.Fatalf("%q: %v", tc.q, err)
		}
		if len(got) != len(tc.want) {
			t.Errorf("%q: %d accounts, want %v", tc.q, len(got), tc.want)
			continue
		}
		for i, a := range got {
			if a.ID != tc.want[i] {
				t.Errorf("%q: account %d is %s, want %s", tc.q, i, a.ID, tc.want[i])
			}
			if a.PasswordHash != nil {
				t.Errorf("%q: password hash returned", tc.q)
			}
		}
	}
	// The store's record keeps its hash: FindAccounts clears a copy.
	a, err := svc.Account(ctx, mail)
	if err != nil || len(a.PasswordHash) == 0 {
		t.Errorf("stored account lost its password hash: %v", err)
	}
}
