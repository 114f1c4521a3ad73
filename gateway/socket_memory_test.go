package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/heroiclabs/nakama-common/rtapi"
	"google.golang.org/protobuf/proto"
)

// Memory per idle socket, measured in process.
//
// The server runs in this test process; the clients run in a child process (this test binary
// re-executed with only TestHelperSocketClients selected), so that their memory does not pollute
// the figure. Once the child holds N sockets, each having sent one envelope ping and received
// its pong, the test reads the server's memory stats after a GC and divides the growth by N.
//
//	SESSIONGATE_SOCKET_MEMORY=2000,5000 go test -run '^TestSocketMemory$' -count 1 -v ./gateway/
//
// SESSIONGATE_SOCKET_MEMORY_FORMATS=json,protobuf measures each socket format in turn, in the same
// run (json alone by default); a protobuf client's ping and pong are binary envelopes.
//
// With SESSIONGATE_SOCKET_MEMORY_PROFILE=<dir> it also writes <dir>/heap-<n>.pprof
// (heap-<n>-protobuf.pprof for protobuf sockets; every
// allocation sampled; the figures then include the profiler's overhead): read it with
// go tool pprof -sample_index=inuse_space -top.
//
// Skipped unless SESSIONGATE_SOCKET_MEMORY is set (it opens thousands of loopback sockets, and
// the race detector would distort the figure).
func TestSocketMemory(t *testing.T) {
	spec := os.Getenv("SESSIONGATE_SOCKET_MEMORY")
	if spec == "" {
		t.Skip("set SESSIONGATE_SOCKET_MEMORY=2000,5000 to measure memory per idle socket")
	}
	if os.Getenv("SESSIONGATE_SOCKET_MEMORY_PROFILE") != "" {
		runtime.MemProfileRate = 1 // every allocation, for an exact per-socket breakdown
	}
	formats := []string{"json"}
	if v := os.Getenv("SESSIONGATE_SOCKET_MEMORY_FORMATS"); v != "" {
		formats = strings.Split(v, ",")
	}
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 || n > 9000 {
			t.Fatalf("bad socket count %q (1..9000: server and client share the 20,000 files limit)", f)
		}
		for _, format := range formats {
			if format != "json" && format != "protobuf" {
				t.Fatalf("bad format %q (json or protobuf)", format)
			}
			name := strconv.Itoa(n)
			if len(formats) > 1 {
				name += "/" + format
			}
			t.Run(name, func(t *testing.T) { measureSocketMemory(t, n, format) })
		}
	}
}

// memSnapshot is what the figure is computed from.
type memSnapshot struct {
	heapInuse, stackInuse, heapAlloc, rss uint64
	goroutines                            int
}

func snapshot() memSnapshot {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSnapshot{
		heapInuse: ms.HeapInuse, stackInuse: ms.StackInuse, heapAlloc: ms.HeapAlloc,
		rss: readRSS(), goroutines: runtime.NumGoroutine(),
	}
}

// readRSS returns the process's resident set size from /proc, or 0 where there is none.
func readRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func measureSocketMemory(t *testing.T, n int, format string) {
	s := startServer(t, testConfig(), memStores())
	sess := s.authDevice(t, "device-socket-memory", "")
	before := snapshot()

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSocketClients$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		"SESSIONGATE_HELPER_URL="+s.wsURL("format="+format+"&token="+query(sess.Token)),
		"SESSIONGATE_HELPER_FORMAT="+format,
		"SESSIONGATE_HELPER_N="+strconv.Itoa(n),
		"SESSIONGATE_SOCKET_MEMORY=")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
		waitFor(t, 30*time.Second, "every socket to close", func() bool { return s.srv.Hub().Len() == 0 })
	}()
	sc := bufio.NewScanner(stdout)
	ready := false
	for sc.Scan() {
		if sc.Text() == "ready" {
			ready = true
			break
		}
	}
	if !ready {
		t.Fatalf("client process ended before holding %d sockets", n)
	}
	ramp := time.Since(start)
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	if got := s.srv.Hub().Len(); got != n {
		t.Fatalf("%d sockets registered, want %d", got, n)
	}
	// The load tool reads the RSS 30s after the ramp; 12s covers two of the node's memory
	// release checks (socket_memory.go). rssRaw is read first, without forcing anything.
	time.Sleep(12 * time.Second)
	rssRaw := readRSS()
	after := snapshot()
	if dir := os.Getenv("SESSIONGATE_SOCKET_MEMORY_PROFILE"); dir != "" {
		name := fmt.Sprintf("%s/heap-%d.pprof", dir, n)
		if format != "json" {
			name = fmt.Sprintf("%s/heap-%d-%s.pprof", dir, n, format)
		}
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		_ = pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}

	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	heap := per(after.heapInuse, before.heapInuse)
	stack := per(after.stackInuse, before.stackInuse)
	t.Logf("SOCKETMEM format=%s n=%d ramp=%v bytes/socket=%.0f (heap_inuse %.0f + stack_inuse %.0f; heap_alloc %.0f) rss/socket=%.0f (before GC: %.0f) goroutines/socket=%.2f",
		format, n, ramp.Round(time.Millisecond), heap+stack, heap, stack, per(after.heapAlloc, before.heapAlloc),
		per(after.rss, before.rss), per(rssRaw, before.rss), float64(after.goroutines-before.goroutines)/float64(n))
}

// TestHelperSocketClients is the client process of TestSocketMemory: it opens
// SESSIONGATE_HELPER_N sockets, pings each once, prints "ready" and holds them until its stdin
// closes.
func TestHelperSocketClients(t *testing.T) {
	url := os.Getenv("SESSIONGATE_HELPER_URL")
	if url == "" {
		t.Skip("client process of TestSocketMemory")
	}
	n, _ := strconv.Atoi(os.Getenv("SESSIONGATE_HELPER_N"))
	protobuf := os.Getenv("SESSIONGATE_HELPER_FORMAT") == "protobuf"
	conns := make([]*websocket.Conn, n)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	const workers = 64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				c, err := helperSocket(ctx, url, i, protobuf)
				if err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, fmt.Errorf("socket %d: %w", i, err))
					mu.Unlock()
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		fmt.Fprintln(os.Stderr, "helper:", firstErr)
		os.Exit(1)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		_ = c.CloseNow()
	}
	os.Exit(0)
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// helperSocket opens one socket, sends an envelope ping (a protobuf one on a protobuf socket),
// waits for the pong, then leaves the socket to answer the server's WebSocket pings on its own.
func helperSocket(ctx context.Context, url string, i int, protobuf bool) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(dctx, url, nil)
	if err != nil {
		return nil, err
	}
	cid := strconv.Itoa(i)
	typ, ping := websocket.MessageText, []byte(`{"cid":"`+cid+`","ping":{}}`)
	if protobuf {
		typ = websocket.MessageBinary
		ping, _ = proto.Marshal(pingEnv(cid))
	}
	if err := c.Write(dctx, typ, ping); err != nil {
		c.CloseNow()
		return nil, err
	}
	_, data, err := c.Read(dctx)
	var pong rtapi.Envelope
	switch {
	case err != nil:
	case protobuf:
		if err = proto.Unmarshal(data, &pong); err == nil && pong.GetPong() == nil {
			err = errors.New("not a pong")
		}
	case !strings.Contains(string(data), `"pong"`):
		err = errors.New("not a pong")
	}
	if err != nil {
		c.CloseNow()
		return nil, fmt.Errorf("no pong: %q %v", data, err)
	}
	c.CloseRead(ctx)
	return c, nil
}
