package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sessiongate/sessiongate/gateway"
	"github.com/sessiongate/sessiongate/internal/redisproc"
)

// The console's browser test runs testdata/console/console_test.mjs: playwright-core (pinned
// in testdata/console/package-lock.json, installed there on first run) drives the system's
// headless Chromium through the console of an in-process gateway while a test client holds a
// socket. The screenshots of each page are left in consoleArtifactsDir (or
// $SESSIONGATE_TEST_ARTIFACTS) for whoever wants to look.
const (
	consoleBrowserDir     = "testdata/console"
	consoleBrowserScript  = "console_test.mjs"
	consoleArtifactsDir   = "testdata/console/artifacts"
	consoleBrowserTimeout = 90 * time.Second
)

// TestConsoleBrowser, on one embedded node and on two nodes on Redis (the console of one, the
// client's socket on the other): a wrong password is refused; after login the overview shows
// the nodes, the mode, Redis health and the client's socket; the user search finds the socket; Disconnect asks for
// confirmation (a cancel keeps the socket), and once confirmed the client sees its socket
// closed with 4000 and the console's reason; logout returns to the login page. Every page is
// screenshotted and the overview's screenshot must not be blank.
func TestConsoleBrowser(t *testing.T) {
	node := nakamaJSTool(t, "node")
	npm := nakamaJSTool(t, "npm")
	nakamaJSCheckNodeVersion(t, node)
	chromium := consoleChromium(t)
	dir, err := filepath.Abs(consoleBrowserDir)
	if err != nil {
		t.Fatal(err)
	}
	nakamaJSInstall(t, npm, dir)
	artifacts := os.Getenv("SESSIONGATE_TEST_ARTIFACTS")
	if artifacts == "" {
		artifacts = consoleArtifactsDir
	}
	if artifacts, err = filepath.Abs(artifacts); err != nil {
		t.Fatal(err)
	}

	t.Run("embedded", func(t *testing.T) {
		s := startServer(t, consoleConfig(), memStores())
		runConsoleBrowser(t, node, chromium, dir, filepath.Join(artifacts, "embedded"), s, s, "embedded", 1)
	})
	t.Run("cluster", func(t *testing.T) {
		srv := redisproc.ForTest(t)
		nodes := startNodes(t, singleRedis(srv.Addr()), 2, func(cfg *gateway.Config) {
			cfg.ConsoleUsername, cfg.ConsolePassword = testConsoleUser, testConsolePassword
		})
		// The console of one node disconnects a socket the other holds.
		runConsoleBrowser(t, node, chromium, dir, filepath.Join(artifacts, "cluster"), nodes[0], nodes[1], "cluster", 2)
	})
}

// runConsoleBrowser runs the script with the console of s, while a test client holds a
// socket on holder, and checks what the client and the screenshots show.
func runConsoleBrowser(t *testing.T, node, chromium, dir, artifacts string, s, holder *testServer, mode string, nodes int) {
	t.Helper()
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	shots := []string{"login-refused", "overview", "users", "after-game-close", "confirm", "after-disconnect"}
	for _, name := range append(shots, "failure") {
		_ = os.Remove(filepath.Join(artifacts, name+".png"))
	}
	user := newClusterUser(t, holder, "device-console-browser")
	conn := holder.mustSocket(t, user.token)
	sid := waitSession(t, s, user.id)
	game := mustGame(t, holder.asUser(t, user.token, "POST", "/v2/game-sessions", createBody("browser-game", "EUR", "browser-ext-"+mode)))
	// The client reads all along, as a game client does, so that it answers the close at once.
	closed := make(chan error, 1)
	var gameClosed atomic.Bool
	go func() {
		for {
			_, msg, err := conn.Read(context.Background())
			if err != nil {
				closed <- err
				return
			}
			if bytes.Contains(msg, []byte(`"subject":"game_session_closed"`)) && bytes.Contains(msg, []byte(game.ID)) {
				gameClosed.Store(true)
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), consoleBrowserTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, consoleBrowserScript)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"CONSOLE_URL="+s.url+"/console", "CONSOLE_USER="+testConsoleUser, "CONSOLE_PASSWORD="+testConsolePassword,
		"SEARCH_QUERY=device-console-browser", "SESSION_ID="+sid, "NODE_ID="+holder.cfg.NodeID, "GAME_SESSION_ID="+game.ID,
		"EXPECT_MODE="+mode, "EXPECT_NODES="+strconv.Itoa(nodes),
		"ARTIFACTS="+artifacts, "CHROMIUM="+chromium, "USER_DATA_DIR="+t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	switch {
	case ctx.Err() != nil:
		t.Fatalf("the browser test did not finish within %v (screenshots in %s):\n%s", consoleBrowserTimeout, artifacts, out.String())
	case err != nil:
		t.Fatalf("the browser test failed (%v; screenshots in %s):\n%s", err, artifacts, out.String())
	}
	t.Logf("browser test passed in %v, screenshots in %s:\n%s", time.Since(start).Round(time.Millisecond), artifacts, out.String())

	if !gameClosed.Load() {
		t.Error("the client was not notified of the game session the console closed")
	}
	select {
	case err := <-closed:
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4000 || ce.Reason != "disconnected by operator" {
			t.Errorf("the client's socket ended with %v, want close 4000 \"disconnected by operator\"", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the client's socket is still open after the console's disconnect")
	}
	for _, name := range shots {
		if fi, err := os.Stat(filepath.Join(artifacts, name+".png")); err != nil || fi.Size() == 0 {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
	checkNotBlank(t, filepath.Join(artifacts, "overview.png"))
}

// consoleChromium finds Debian's chromium; without it the test skips, or fails on CI.
func consoleChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	nakamaJSSkip(t, "chromium not found in PATH: the console's browser test needs it (apt-get install chromium)")
	return ""
}

// checkNotBlank fails unless the PNG at path shows a page: many colours, and no colour
// covering nearly all of it.
func checkNotBlank(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	colors, most, total := colorCounts(img)
	if len(colors) < 16 || float64(most) > 0.98*float64(total) {
		t.Errorf("%s looks blank: %d colours, the commonest covers %d of %d pixels", path, len(colors), most, total)
	}
}

func colorCounts(img image.Image) (map[uint32]int, int, int) {
	counts := map[uint32]int{}
	most, total := 0, 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			k := r>>8<<16 | g>>8<<8 | bl>>8
			counts[k]++
			most = max(most, counts[k])
			total++
		}
	}
	return counts, most, total
}
