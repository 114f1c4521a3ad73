package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ConsoleSessions keep the console's logins by cookie value. The embedded node keeps them in
// its memory; RedisStores keeps them in Redis, so that a login made through one node is
// honoured by every node of the cluster (behind a load balancer without sticky sessions), and a
// logout through any node ends it everywhere.
type ConsoleSessions interface {
	// Put stores a new login; it lasts consoleSessionTTL.
	Put(ctx context.Context, token string, s ConsoleSession) error
	// Get returns the live login of token, or nil.
	Get(ctx context.Context, token string) (*ConsoleSession, error)
	// Delete ends the login of token, if there is one.
	Delete(ctx context.Context, token string) error
}

// ConsoleSession is one console login: the operator, its CSRF token and when it began.
type ConsoleSession struct {
	User    string    `json:"u"`
	CSRF    string    `json:"c"`
	Created time.Time `json:"t"`
}

// memoryConsoleSessions hold one node's console logins, at most consoleMaxSessions (a new
// login beyond it ends the oldest).
type memoryConsoleSessions struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*ConsoleSession
}

func newMemoryConsoleSessions(now func() time.Time) *memoryConsoleSessions {
	return &memoryConsoleSessions{now: now, m: make(map[string]*ConsoleSession)}
}

func (c *memoryConsoleSessions) Put(_ context.Context, token string, s ConsoleSession) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweep()
	c.m[token] = &s
	return nil
}

func (c *memoryConsoleSessions) Get(_ context.Context, token string) (*ConsoleSession, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.m[token]
	if s != nil && c.now().Sub(s.Created) > consoleSessionTTL {
		delete(c.m, token)
		s = nil
	}
	return s, nil
}

func (c *memoryConsoleSessions) Delete(_ context.Context, token string) error {
	c.mu.Lock()
	delete(c.m, token)
	c.mu.Unlock()
	return nil
}

// sweep drops expired logins, and the oldest beyond consoleMaxSessions - 1, so that a new one
// fits. c.mu is held.
func (c *memoryConsoleSessions) sweep() {
	now := c.now()
	oldest, oldestAt := "", now
	for k, s := range c.m {
		if now.Sub(s.Created) > consoleSessionTTL {
			delete(c.m, k)
		} else if s.Created.Before(oldestAt) || oldest == "" {
			oldest, oldestAt = k, s.Created
		}
	}
	if len(c.m) >= consoleMaxSessions {
		delete(c.m, oldest)
	}
}

// redisConsoleSessions keep the cluster's console logins in Redis, each under the SHA-256 of
// its cookie value (the key does not hold the secret), expiring with the login. Redis is the
// judge while it answers (a logout through any node ends the login everywhere); this node's
// own copy of the logins it issued or saw keeps the console usable through a Redis outage,
// when the operator needs it most.
type redisConsoleSessions struct {
	client redis.UniversalClient
	prefix string
	local  *memoryConsoleSessions
}

func newRedisConsoleSessions(client redis.UniversalClient, prefix string) *redisConsoleSessions {
	return &redisConsoleSessions{client: client, prefix: prefix, local: newMemoryConsoleSessions(time.Now)}
}

func (r *redisConsoleSessions) key(token string) string {
	sum := sha256.Sum256([]byte(token))
	return r.prefix + "console:session:" + hex.EncodeToString(sum[:])
}

// Put stores the login here and in Redis; an error means only this node knows it.
func (r *redisConsoleSessions) Put(ctx context.Context, token string, s ConsoleSession) error {
	_ = r.local.Put(ctx, token, s)
	b, _ := json.Marshal(s) // strings and a time
	if err := r.client.Set(ctx, r.key(token), b, consoleSessionTTL).Err(); err != nil {
		return fmt.Errorf("failed to store the console session: %w", err)
	}
	return nil
}

func (r *redisConsoleSessions) Get(ctx context.Context, token string) (*ConsoleSession, error) {
	b, err := r.client.Get(ctx, r.key(token)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		_ = r.local.Delete(ctx, token) // ended through another node
		return nil, nil
	case err != nil:
		if s, _ := r.local.Get(ctx, token); s != nil {
			return s, nil
		}
		return nil, fmt.Errorf("failed to read the console session: %w", err)
	}
	var s ConsoleSession
	if err := json.Unmarshal(b, &s); err != nil || r.local.now().Sub(s.Created) > consoleSessionTTL {
		return nil, nil // not a login this code wrote, or one this node's clock says is over
	}
	if mine, _ := r.local.Get(ctx, token); mine == nil {
		_ = r.local.Put(ctx, token, s) // seen here: honoured here through an outage
	}
	return &s, nil
}

// Delete ends the login here and in Redis; an error means the other nodes may still honour it
// until Redis answers again (or it expires).
func (r *redisConsoleSessions) Delete(ctx context.Context, token string) error {
	_ = r.local.Delete(ctx, token)
	if err := r.client.Del(ctx, r.key(token)).Err(); err != nil {
		return fmt.Errorf("failed to end the console session: %w", err)
	}
	return nil
}
