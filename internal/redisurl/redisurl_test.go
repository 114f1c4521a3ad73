package redisurl

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestNewClient builds clients from every URL form without connecting.
func TestNewClient(t *testing.T) {
	single := func(addr string, db int, user, pass string, tls bool) func(*testing.T, redis.UniversalClient) {
		return func(t *testing.T, c redis.UniversalClient) {
			cl, ok := c.(*redis.Client)
			if !ok {
				t.Fatalf("client %T, want *redis.Client", c)
			}
			o := cl.Options()
			if o.Addr != addr || o.DB != db || o.Username != user || o.Password != pass || (o.TLSConfig != nil) != tls {
				t.Errorf("options addr %q db %d user %q pass %q tls %v; want %q %d %q %q %v",
					o.Addr, o.DB, o.Username, o.Password, o.TLSConfig != nil, addr, db, user, pass, tls)
			}
		}
	}
	failover := func(db int, user, pass string) func(*testing.T, redis.UniversalClient) {
		return func(t *testing.T, c redis.UniversalClient) {
			cl, ok := c.(*redis.Client)
			if !ok {
				t.Fatalf("client %T, want the failover *redis.Client", c)
			}
			o := cl.Options()
			if o.Addr != "FailoverClient" {
				t.Errorf("addr %q: not a Sentinel failover client", o.Addr)
			}
			if o.DB != db || o.Username != user || o.Password != pass {
				t.Errorf("db %d user %q pass %q; want %d %q %q", o.DB, o.Username, o.Password, db, user, pass)
			}
		}
	}
	cluster := func(addrs []string, user, pass string) func(*testing.T, redis.UniversalClient) {
		return func(t *testing.T, c redis.UniversalClient) {
			cl, ok := c.(*redis.ClusterClient)
			if !ok {
				t.Fatalf("client %T, want *redis.ClusterClient", c)
			}
			o := cl.Options()
			if strings.Join(o.Addrs, ",") != strings.Join(addrs, ",") || o.Username != user || o.Password != pass {
				t.Errorf("addrs %v user %q pass %q; want %v %q %q", o.Addrs, o.Username, o.Password, addrs, user, pass)
			}
		}
	}
	for _, tc := range []struct {
		url   string
		check func(*testing.T, redis.UniversalClient)
		err   string
	}{
		{"redis://localhost:6379", single("localhost:6379", 0, "", "", false), ""},
		{"redis://localhost:6379/2", single("localhost:6379", 2, "", "", false), ""},
		{"redis://user:pa%40ss@10.0.0.1:6380/1", single("10.0.0.1:6380", 1, "user", "pa@ss", false), ""},
		{"redis://:secret@localhost:6379", single("localhost:6379", 0, "", "secret", false), ""},
		{"rediss://cache.example:6380", single("cache.example:6380", 0, "", "", true), ""},
		{"redis://localhost:6379/0?pool_size=7&dial_timeout=3s", func(t *testing.T, c redis.UniversalClient) {
			o := c.(*redis.Client).Options()
			if o.PoolSize != 7 || o.DialTimeout != 3*time.Second {
				t.Errorf("pool %d dial timeout %v, want 7 and 3s", o.PoolSize, o.DialTimeout)
			}
		}, ""},
		{"redis-sentinel://s1:26379,s2:26379,s3:26379?master=mymaster", failover(0, "", ""), ""},
		{"redis-sentinel://s1:26379/3?master=mymaster", failover(3, "", ""), ""},
		{"redis-sentinel://user:p%3Ass@s1:26379,s2:26379/2?master=m", failover(2, "user", "p:ss"), ""},
		{"redis-cluster://c1:7000,c2:7001,c3:7002", cluster([]string{"c1:7000", "c2:7001", "c3:7002"}, "", ""), ""},
		{"redis-cluster://u:p@c1:7000/", cluster([]string{"c1:7000"}, "u", "p"), ""},
		{"redis-cluster://c1:7000/0", cluster([]string{"c1:7000"}, "", ""), ""},
		{"redis-cluster://c1:7000, c2:7001 ,", cluster([]string{"c1:7000", "c2:7001"}, "", ""), ""},
		{"redis-cluster://c1:7000?read_only=true", cluster([]string{"c1:7000"}, "", ""), ""},

		{"redis-sentinel://s1:26379", nil, "redis-sentinel:// needs ?master=name"},
		{"redis-sentinel://s1:26379/?master=", nil, "redis-sentinel:// needs ?master=name"},
		{"redis-sentinel://s1:26379/x?master=m", nil, `bad db "x"`},
		{"redis-cluster://c1:7000/1", nil, "Redis Cluster has only db 0"},
		{"redis-cluster://", nil, "no hosts"},
		{"redis-cluster:///", nil, "no hosts"},
		{"redis-sentinel://,?master=m", nil, "no hosts"},
		{"http://localhost:6379", nil, `unknown scheme "http"`},
		{"unix:///tmp/redis.sock", nil, `unknown scheme "unix"`},
		{"localhost:6379", nil, "missing scheme"},
		{"", nil, "missing scheme"},
		{"redis://localhost:6379/notadb", nil, "invalid redis url"},
		{"redis-cluster://u:%zz@c1:7000", nil, "bad password"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			c, err := NewClient(tc.url)
			if tc.err != "" {
				if err == nil {
					c.Close()
					t.Fatalf("accepted, want an error containing %q", tc.err)
				}
				if !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "invalid redis url") {
					t.Errorf("error %q, want %q prefixed by invalid redis url", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			defer c.Close()
			tc.check(t, c)
		})
	}
}
