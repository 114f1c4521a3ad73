// Package redisurl builds the gateway's Redis client from its --redis-url, one URL for each
// deployment redis.UniversalClient covers: a single server, Sentinel and Redis Cluster. It is
// apart from cmd/gateway so that tests build their clients exactly as the binary does.
package redisurl

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// NewClient builds a redis.UniversalClient from a URL:
//
//	redis://[user:pass@]host:port[/db]          one server (rediss:// for TLS)
//	redis-sentinel://[user:pass@]h1:p1,h2:p2[/db]?master=name
//	redis-cluster://[user:pass@]h1:p1,h2:p2     Redis Cluster seed nodes
//
// The first form is go-redis's own ParseURL, so its query options (timeouts, pool size) work.
func NewClient(raw string) (redis.UniversalClient, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("invalid redis url: missing scheme")
	}
	switch scheme {
	case "redis", "rediss":
		opt, err := redis.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("invalid redis url: %w", err)
		}
		return redis.NewClient(opt), nil
	case "redis-sentinel", "redis-cluster":
	default:
		return nil, fmt.Errorf("invalid redis url: unknown scheme %q", scheme)
	}
	// Parse the multi-host forms with a placeholder host, since net/url rejects host lists.
	userinfo, hostsAndPath, found := strings.Cut(rest, "@")
	if !found {
		hostsAndPath, userinfo = userinfo, ""
	}
	hosts, pathAndQuery, _ := strings.Cut(hostsAndPath, "/")
	if i := strings.IndexByte(hosts, '?'); i >= 0 {
		hosts, pathAndQuery = hosts[:i], pathAndQuery+hosts[i:]
	}
	u, err := url.Parse("x://placeholder/" + pathAndQuery)
	if err != nil {
		return nil, fmt.Errorf("invalid redis url: %w", err)
	}
	opt := &redis.UniversalOptions{}
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			opt.Addrs = append(opt.Addrs, h)
		}
	}
	if len(opt.Addrs) == 0 {
		return nil, fmt.Errorf("invalid redis url: no hosts")
	}
	if userinfo != "" {
		user, pass, _ := strings.Cut(userinfo, ":")
		if opt.Username, err = url.PathUnescape(user); err != nil {
			return nil, fmt.Errorf("invalid redis url: bad username: %w", err)
		}
		if opt.Password, err = url.PathUnescape(pass); err != nil {
			return nil, fmt.Errorf("invalid redis url: bad password: %w", err)
		}
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if opt.DB, err = strconv.Atoi(db); err != nil {
			return nil, fmt.Errorf("invalid redis url: bad db %q", db)
		}
	}
	if scheme == "redis-sentinel" {
		opt.MasterName = u.Query().Get("master")
		if opt.MasterName == "" {
			return nil, fmt.Errorf("invalid redis url: redis-sentinel:// needs ?master=name")
		}
		return redis.NewFailoverClient(opt.Failover()), nil
	}
	if opt.DB != 0 {
		return nil, fmt.Errorf("invalid redis url: Redis Cluster has only db 0")
	}
	return redis.NewClusterClient(opt.Cluster()), nil
}
