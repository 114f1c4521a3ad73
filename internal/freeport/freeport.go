package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowest is the lowest port handed out: above the well-known and most registered services.
const lowest = 10000

// rangeFile holds the kernel's ephemeral port range (Linux).
const rangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

var (
	mu     sync.Mutex
	handed = map[int]bool{} // ports handed out by this process, never handed out twice
)

// Get returns a port free on 127.0.0.1 a moment ago. On Linux it lies below the ephemeral
// range when there is room there; elsewhere (or with no room) it is an ephemeral port, which an
// outgoing connection may take before the caller binds it. The caller should retry on a bind
// failure either way: another process may bind the port too.
func Get() (int, error) {
	mu.Lock()
	defer mu.Unlock()
	if low := ephemeralLow(); low-lowest >= 1000 {
		for range 200 {
			p := lowest + rand.IntN(low-lowest)
			if !handed[p] && free(p) {
				handed[p] = true
				return p, nil
			}
		}
	}
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		if err := l.Close(); err != nil {
			return 0, fmt.Errorf("release the probe port: %w", err)
		}
		if !handed[p] {
			handed[p] = true
			return p, nil
		}
	}
	return 0, fmt.Errorf("find a free port: every port tried was handed out already")
}

// free reports whether port can be listened on now.
func free(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	return l.Close() == nil
}

// ephemeralLow is the lowest ephemeral port, or 0 when unknown.
func ephemeralLow() int {
	b, err := os.ReadFile(rangeFile)
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	low, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return low
}
