package auth

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestRevocationCacheCutoff(t *testing.T) {
	c := newRevocationCache()
	if got := c.cutoff(RevokeSession, "tid-1"); got != 0 {
		t.Fatalf("empty cache cutoff %d, want 0", got)
	}
	c.apply(Revocation{Kind: RevokeSession, ID: "tid-1", Before: 100, Until: 200})
	if got := c.cutoff(RevokeSession, "tid-1"); got != 100 {
		t.Errorf("cutoff %d, want 100", got)
	}
	// Kinds are separate, even for the same id.
	for _, k := range []RevocationKind{RevokeRefresh, RevokeUser} {
		if got := c.cutoff(k, "tid-1"); got != 0 {
			t.Errorf("kind %d cutoff %d, want 0", k, got)
		}
	}
	// A later Before wins; an earlier one does not lower it, but can extend Until.
	c.apply(Revocation{Kind: RevokeSession, ID: "tid-1", Before: 150, Until: 180})
	c.apply(Revocation{Kind: RevokeSession, ID: "tid-1", Before: 120, Until: 500})
	if got := c.cutoff(RevokeSession, "tid-1"); got != 150 {
		t.Errorf("cutoff %d, want 150", got)
	}
	if n := c.expire(time.Unix(499, 0)); n != 0 {
		t.Errorf("expired %d entries before the latest Until, want 0", n)
	}
	// Malformed revocations are ignored.
	for _, r := range []Revocation{
		{Kind: 0, ID: "x", Before: 1, Until: 2},
		{Kind: RevokeUser + 1, ID: "x", Before: 1, Until: 2},
		{Kind: RevokeUser, ID: "", Before: 1, Until: 2},
		{Kind: RevokeUser, ID: "x", Before: 1, Until: 0},
	} {
		c.apply(r)
	}
	if got := c.size(); got != 1 {
		t.Errorf("size %d after malformed applies, want 1", got)
	}
}

func TestRevocationCacheRevoked(t *testing.T) {
	c := newRevocationCache()
	c.apply(Revocation{Kind: RevokeSession, ID: "tid-s", Before: 100, Until: 1000})
	c.apply(Revocation{Kind: RevokeRefresh, ID: "tid-r", Before: 100, Until: 1000})
	c.apply(Revocation{Kind: RevokeUser, ID: "user-u", Before: 300, Until: 1000})
	for _, tc := range []struct {
		kind        RevocationKind
		tid, uid    string
		iat         int64
		wantRevoked bool
		what        string
	}{
		{RevokeSession, "tid-s", "user-x", 99, true, "issued before the cutoff"},
		{RevokeSession, "tid-s", "user-x", 100, true, "issued at the cutoff"},
		{RevokeSession, "tid-s", "user-x", 101, false, "issued after the cutoff"},
		{RevokeRefresh, "tid-s", "user-x", 50, false, "a session revocation leaves the refresh token"},
		{RevokeRefresh, "tid-r", "user-x", 100, true, "refresh revocation"},
		{RevokeSession, "tid-r", "user-x", 50, false, "a refresh revocation leaves the session token"},
		{RevokeSession, "tid-other", "user-u", 300, true, "user revocation, session token"},
		{RevokeRefresh, "tid-other", "user-u", 299, true, "user revocation, refresh token"},
		{RevokeRefresh, "tid-other", "user-u", 301, false, "token after the user revocation"},
		{RevokeSession, "tid-other", "user-x", 1, false, "another user"},
		{RevokeSession, "user-u", "user-x", 1, false, "a user id is not a token id"},
	} {
		if got := c.revoked(tc.kind, tc.tid, tc.uid, tc.iat); got != tc.wantRevoked {
			t.Errorf("%s: revoked = %v, want %v", tc.what, got, tc.wantRevoked)
		}
	}
}

func TestRevocationCacheMinIssuedAt(t *testing.T) {
	c := newRevocationCache()
	if got := c.minIssuedAt(RevokeSession, "tid", "uid"); got != 1 {
		t.Errorf("no revocations: %d, want 1", got)
	}
	c.apply(Revocation{Kind: RevokeUser, ID: "uid", Before: 100, Until: 1000})
	if got := c.minIssuedAt(RevokeSession, "tid", "uid"); got != 101 {
		t.Errorf("user cutoff 100: %d, want 101", got)
	}
	if got := c.minIssuedAt(RevokeSession, "", "uid"); got != 101 {
		t.Errorf("new chain, user cutoff 100: %d, want 101", got)
	}
	c.apply(Revocation{Kind: RevokeSession, ID: "tid", Before: 200, Until: 1000})
	if got := c.minIssuedAt(RevokeSession, "tid", "uid"); got != 201 {
		t.Errorf("chain cutoff 200: %d, want 201", got)
	}
	if got := c.minIssuedAt(RevokeRefresh, "tid", "uid"); got != 101 {
		t.Errorf("refresh kind with a session cutoff: %d, want 101", got)
	}
	if got := c.minIssuedAt(RevokeSession, "other-tid", "uid"); got != 101 {
		t.Errorf("other chain: %d, want 101", got)
	}
	if got := c.minIssuedAt(RevokeSession, "tid", "other-uid"); got != 201 {
		t.Errorf("chain cutoff, other user: %d, want 201", got)
	}
	// Whatever minIssuedAt returns is not revoked, and one less is.
	for _, k := range []RevocationKind{RevokeSession, RevokeRefresh} {
		m := c.minIssuedAt(k, "tid", "uid")
		if c.revoked(k, "tid", "uid", m) || !c.revoked(k, "tid", "uid", m-1) {
			t.Errorf("kind %d: minIssuedAt %d is not the first unrevoked iat", k, m)
		}
	}
}

func TestRevocationCacheExpire(t *testing.T) {
	c := newRevocationCache()
	for i := range 100 {
		c.apply(Revocation{Kind: RevokeSession, ID: "tid-" + strconv.Itoa(i), Before: 1, Until: int64(1000 + i)})
	}
	c.apply(Revocation{Kind: RevokeUser, ID: "uid", Before: 1, Until: 5000})
	if got := c.size(); got != 101 {
		t.Fatalf("size %d, want 101", got)
	}
	if n := c.expire(time.Unix(999, 0)); n != 0 {
		t.Errorf("expire before any Until removed %d", n)
	}
	// An entry is kept through its Until second and dropped after it.
	if n := c.expire(time.Unix(1049, 0)); n != 49 {
		t.Errorf("expire at 1049 removed %d, want 49 (Until 1000..1048)", n)
	}
	if !c.revoked(RevokeSession, "tid-49", "u", 1) || c.revoked(RevokeSession, "tid-48", "u", 1) {
		t.Error("expire removed the wrong entries")
	}
	if n := c.expire(time.Unix(4000, 0)); n != 51 {
		t.Errorf("expire at 4000 removed %d, want 51", n)
	}
	if got := c.size(); got != 1 || !c.revoked(RevokeSession, "any", "uid", 1) {
		t.Errorf("size %d; the user revocation should remain", got)
	}
	c.expire(time.Unix(5001, 0))
	if c.size() != 0 {
		t.Errorf("size %d after everything expired", c.size())
	}
}

func TestRevocationCacheConcurrent(t *testing.T) {
	c := newRevocationCache()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				id := "tid-" + strconv.Itoa(i%50)
				c.apply(Revocation{Kind: RevokeSession, ID: id, Before: int64(w*1000 + i), Until: 1 << 40})
				c.revoked(RevokeSession, id, "uid", int64(i))
				c.minIssuedAt(RevokeSession, id, "uid")
				if i%100 == 0 {
					c.expire(time.Unix(0, 0))
					c.size()
				}
			}
		}()
	}
	wg.Wait()
	// Every key ends at the highest Before any writer gave it.
	for i := range 50 {
		want := int64(7*1000 + 450 + i)
		if got := c.cutoff(RevokeSession, "tid-"+strconv.Itoa(i)); got != want {
			t.Errorf("tid-%d cutoff %d, want %d", i, got, want)
		}
	}
}
