package redisproc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Timings of the sentinels StartSentinel runs, short so that a test sees a failover within
// seconds: a master silent for sentinelDownAfter is down for the sentinel that pings it, and
// down for good once sentinelQuorum sentinels agree; a failover that stalls is retried after
// twice sentinelFailoverTimeout.
const (
	sentinelCount           = 3
	sentinelQuorum          = 2
	sentinelDownAfter       = time.Second
	sentinelFailoverTimeout = 2 * time.Second
	// sentinelMaster is the name the sentinels monitor the master under.
	sentinelMaster = "redisproc"
	// sentinelReadyTimeout bounds the wait for the sentinels to find each other, which they do
	// through hello messages sent every 2s.
	sentinelReadyTimeout = 20 * time.Second
)

// Sentinel is a Redis Sentinel deployment: a master, a replica of it and three sentinels that
// monitor it with a quorum of 2, each a Server on a loopback port. After a failover the former
// replica is the master; the sentinels say which server that is.
type Sentinel struct {
	data      []*Server // the master and the replica it started with
	sentinels []*Server
	dir       string
	ownDir    bool
}

// StartSentinel runs a master, a replica of it (--replicaof) and three sentinels
// (redis-server <config> --sentinel) watching it, and returns once every sentinel knows the
// master, sees the replica in sync and knows the two other sentinels, so that a failover can
// start as soon as the master dies. The caller must Stop it.
func StartSentinel(opts Options) (*Sentinel, error) {
	d := &Sentinel{dir: opts.Dir}
	if d.dir == "" {
		var err error
		if d.dir, err = os.MkdirTemp("", "redisproc-sentinel-"); err != nil {
			return nil, fmt.Errorf("failed to create sentinel dir: %w", err)
		}
		d.ownDir = true
	}
	fail := func(err error) (*Sentinel, error) {
		_ = d.Stop()
		return nil, err
	}
	// The full sync of a new replica is diskless (persistence is off) and would wait 5s for
	// more replicas to join it; there is only one. Either server may be the master later.
	dataArgs := append(append([]string(nil), opts.Args...), "--repl-diskless-sync-delay", "0")
	for i, name := range []string{"master", "replica"} {
		o := opts
		o.Dir = filepath.Join(d.dir, name)
		o.Args = dataArgs
		if i == 1 {
			o.Args = append(append([]string(nil), dataArgs...), "--replicaof", "127.0.0.1", strconv.Itoa(d.data[0].Port()))
		}
		s, err := start(&Server{opts: o})
		if err != nil {
			return fail(err)
		}
		d.data = append(d.data, s)
	}
	master, replica := d.data[0], d.data[1]
	if err := waitReplicaLinked(replica.Addr(), opts.startTimeout()); err != nil {
		return fail(err)
	}
	conf := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d %[3]d\n"+
		"sentinel down-after-milliseconds %[1]s %[4]d\n"+
		"sentinel failover-timeout %[1]s %[5]d\n",
		sentinelMaster, master.Port(), sentinelQuorum, sentinelDownAfter.Milliseconds(), sentinelFailoverTimeout.Milliseconds())
	for i := range sentinelCount {
		o := opts
		o.Dir = filepath.Join(d.dir, "sentinel"+strconv.Itoa(i))
		// A sentinel takes no data-server arguments; they would be rejected or ignored.
		o.Args = nil
		s, err := start(&Server{opts: o, sentinelConf: conf})
		if err != nil {
			return fail(err)
		}
		d.sentinels = append(d.sentinels, s)
	}
	if err := d.waitReady(master.Addr(), replica.Addr(), sentinelReadyTimeout); err != nil {
		return fail(err)
	}
	return d, nil
}

func (o Options) startTimeout() time.Duration {
	if o.StartTimeout <= 0 {
		return 5 * time.Second
	}
	return o.StartTimeout
}

// waitReplicaLinked polls the replica until its initial sync with the master is done.
func waitReplicaLinked(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		info, err := command(addr, time.Second, "INFO", "replication")
		if err == nil && strings.Contains(info, "master_link_status:up\r\n") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replica %s not in sync after %v: %v\n%s", addr, timeout, err, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitReady polls every sentinel until it reports master as the master, replica as a healthy
// replica in sync, and every other sentinel as healthy.
func (d *Sentinel) waitReady(master, replica string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, s := range d.sentinels {
		for {
			err := d.sentinelReady(s.Addr(), master, replica)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("sentinel %s not ready after %v: %w", s.Addr(), timeout, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// sentinelReady says what sentinel addr does not see yet, or nil.
func (d *Sentinel) sentinelReady(addr, master, replica string) error {
	got, err := masterOf(addr)
	if err != nil {
		return err
	}
	if got != master {
		return fmt.Errorf("master %s, want %s", got, master)
	}
	replicas, err := sentinelTable(addr, "REPLICAS")
	if err != nil {
		return err
	}
	if len(replicas) != 1 || replicas[0]["name"] != replica || replicas[0]["flags"] != "slave" ||
		replicas[0]["master-link-status"] != "ok" {
		return fmt.Errorf("replicas %v, want %s in sync", replicas, replica)
	}
	others, err := sentinelTable(addr, "SENTINELS")
	if err != nil {
		return err
	}
	healthy := 0
	for _, o := range others {
		if o["flags"] == "sentinel" {
			healthy++
		}
	}
	if healthy != len(d.sentinels)-1 {
		return fmt.Errorf("%d other sentinels healthy, want %d: %v", healthy, len(d.sentinels)-1, others)
	}
	return nil
}

// masterOf asks one sentinel for the master's address.
func masterOf(sentinel string) (string, error) {
	v, err := roundTrip(sentinel, time.Second, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", sentinelMaster)
	if err != nil {
		return "", fmt.Errorf("sentinel %s: %w", sentinel, err)
	}
	ipPort, ok := v.([]any)
	if !ok || len(ipPort) != 2 {
		return "", fmt.Errorf("sentinel %s: master address reply %v", sentinel, v)
	}
	ip, _ := ipPort[0].(string)
	port, _ := ipPort[1].(string)
	return net.JoinHostPort(ip, port), nil
}

// sentinelTable runs SENTINEL REPLICAS or SENTINEL SENTINELS on one sentinel and returns one
// field map per entry.
func sentinelTable(sentinel, sub string) ([]map[string]string, error) {
	v, err := roundTrip(sentinel, time.Second, "SENTINEL", sub, sentinelMaster)
	if err != nil {
		return nil, fmt.Errorf("sentinel %s: %w", sentinel, err)
	}
	entries, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("sentinel %s: %s reply %v", sentinel, sub, v)
	}
	table := make([]map[string]string, 0, len(entries))
	for _, e := range entries {
		kv, ok := e.([]any)
		if !ok || len(kv)%2 != 0 {
			return nil, fmt.Errorf("sentinel %s: %s entry %v", sentinel, sub, e)
		}
		m := make(map[string]string, len(kv)/2)
		for i := 0; i < len(kv); i += 2 {
			k, _ := kv[i].(string)
			m[k], _ = kv[i+1].(string)
		}
		table = append(table, m)
	}
	return table, nil
}

// Addrs returns the "127.0.0.1:port" of every sentinel.
func (d *Sentinel) Addrs() []string {
	addrs := make([]string, len(d.sentinels))
	for i, s := range d.sentinels {
		addrs[i] = s.Addr()
	}
	return addrs
}

// MasterName returns the name the sentinels monitor the master under.
func (d *Sentinel) MasterName() string { return sentinelMaster }

// URL returns the deployment as the gateway's --redis-url takes it:
// "redis-sentinel://h1:p1,h2:p2,h3:p3?master=name".
func (d *Sentinel) URL() string {
	return "redis-sentinel://" + strings.Join(d.Addrs(), ",") + "?master=" + sentinelMaster
}

// MasterAddr returns the master's address as every running sentinel reports it, and an
// error while they disagree (a failover in progress) or none answers.
func (d *Sentinel) MasterAddr() (string, error) {
	var addr string
	for _, s := range d.sentinels {
		if !s.Running() {
			continue
		}
		got, err := masterOf(s.Addr())
		if err != nil {
			return "", err
		}
		if addr != "" && got != addr {
			return "", fmt.Errorf("sentinels disagree on the master: %s and %s", addr, got)
		}
		addr = got
	}
	if addr == "" {
		return "", errors.New("no sentinel running")
	}
	return addr, nil
}

// KillMaster kills the master's process with SIGKILL, as a crash would, and returns the
// address it served on. The sentinels then promote the replica within a few seconds.
func (d *Sentinel) KillMaster() (string, error) {
	addr, err := d.MasterAddr()
	if err != nil {
		return "", err
	}
	for _, s := range d.data {
		if s.Addr() == addr {
			return addr, s.Kill()
		}
	}
	return "", fmt.Errorf("master %s is none of the deployment's servers", addr)
}

// Stop stops the sentinels first, so that they do not fail over while the data servers
// stop, then the data servers, and removes the deployment's temporary directory.
func (d *Sentinel) Stop() error {
	var errs []error
	for _, s := range append(append([]*Server(nil), d.sentinels...), d.data...) {
		errs = append(errs, s.Stop())
	}
	if d.ownDir {
		_ = os.RemoveAll(d.dir)
		d.ownDir = false
	}
	return errors.Join(errs...)
}
