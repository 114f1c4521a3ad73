package auth

import (
	"sync"
	"time"
)

// loginLimiter counts failed password logins per account and per client IP over a sliding
// window and refuses further attempts past a limit, slowing password guessing. It is
// node-local: a cluster of N nodes allows up to N times the limit, which still defeats online
// guessing at any useful rate.
type loginLimiter struct {
	mu         sync.Mutex
	window     time.Duration
	perAccount int
	perIP      int
	entries    map[string]*loginFailures
}

type loginFailures struct {
	count int
	since time.Time
}

func newLoginLimiter(window time.Duration, perAccount, perIP int) *loginLimiter {
	return &loginLimiter{window: window, perAccount: perAccount, perIP: perIP, entries: make(map[string]*loginFailures)}
}

func accountKey(k string) string { return "a:" + k }
func ipKey(ip string) string     { return "i:" + ip }

// allowed reports whether a login attempt for account key k from ip may proceed.
func (l *loginLimiter) allowed(k, ip string, now time.Time) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.below(accountKey(k), l.perAccount, now) && (ip == "" || l.below(ipKey(ip), l.perIP, now))
}

func (l *loginLimiter) below(key string, limit int, now time.Time) bool {
	if limit <= 0 {
		return true
	}
	f, ok := l.entries[key]
	if !ok || now.Sub(f.since) >= l.window {
		return true
	}
	return f.count < limit
}

// failed records a failed attempt for account key k from ip.
func (l *loginLimiter) failed(k, ip string, now time.Time) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.add(accountKey(k), now)
	if ip != "" {
		l.add(ipKey(ip), now)
	}
}

func (l *loginLimiter) add(key string, now time.Time) {
	f, ok := l.entries[key]
	if !ok || now.Sub(f.since) >= l.window {
		l.entries[key] = &loginFailures{count: 1, since: now}
		return
	}
	f.count++
}

// succeeded clears the account's count: its owner has proved the password. The IP's count
// stays, so one good account cannot launder guesses against others.
func (l *loginLimiter) succeeded(k string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	delete(l.entries, accountKey(k))
	l.mu.Unlock()
}

// sweep drops windows that have passed, bounding memory under a spray of distinct keys.
func (l *loginLimiter) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, f := range l.entries {
		if now.Sub(f.since) >= l.window {
			delete(l.entries, k)
		}
	}
}
