package loadtest

import (
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chromiumPath finds headless Chromium: skipped when missing, a failure under CI=true.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium not found on PATH; install Debian's chromium package to check the HTML report renders"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// checkHTMLReport writes r's HTML report, checks it is self-contained, opens it in headless
// Chromium and checks that the screenshot shows each chart's data colour.
func checkHTMLReport(t *testing.T, r *Report) {
	t.Helper()
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	if err := r.WriteHTML(page); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<script src", "<link", "http://", "https://", "@import"} {
		if bad == "http://" || bad == "https://" {
			// Target URLs appear as text; no attribute may point anywhere.
			if strings.Contains(string(b), `src="`+bad) || strings.Contains(string(b), `href="`+bad) {
				t.Errorf("report fetches from the network (%s)", bad)
			}
			continue
		}
		if strings.Contains(string(b), bad) {
			t.Errorf("report is not self-contained: contains %q", bad)
		}
	}
	shot := screenshot(t, page, 1200, 2600)
	for name, color := range map[string]string{
		"connect histogram": ColorConnect, "ping histogram": ColorPing, "sockets over time": ColorSockets,
		"server sockets over time": ColorServerSock, "RSS over time": ColorRSS, "reconnect percentiles": ColorDisconnect,
		"close codes": ColorErrors,
	} {
		if n := countColor(shot, color); n < 200 {
			t.Errorf("%s: %d pixels of %s in the screenshot, want a rendered chart (≥ 200)", name, n, color)
		}
	}
	if t.Failed() {
		keep := filepath.Join(os.TempDir(), "loadtest-report-"+strconv.FormatInt(time.Now().UnixNano(), 36))
		_ = os.MkdirAll(keep, 0o755)
		_ = os.WriteFile(filepath.Join(keep, "report.html"), b, 0o644)
		t.Logf("report kept in %s", keep)
	}
}

// screenshot renders page in headless Chromium at w×h and decodes the PNG.
func screenshot(t *testing.T, page string, w, h int) image.Image {
	t.Helper()
	bin := chromiumPath(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--hide-scrollbars",
		"--screenshot="+out, "--window-size="+strconv.Itoa(w)+","+strconv.Itoa(h), "file://"+page)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, msg)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode screenshot: %v", err)
	}
	return img
}

// countColor counts the pixels of img within a small distance of the colour hex (#rrggbb).
func countColor(img image.Image, hex string) int {
	v, _ := strconv.ParseUint(strings.TrimPrefix(hex, "#"), 16, 32)
	cr, cg, cb := int(v>>16), int(v>>8&0xff), int(v&0xff)
	n := 0
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			dr, dg, db := int(r>>8)-cr, int(g>>8)-cg, int(b>>8)-cb
			if dr*dr+dg*dg+db*db < 12*12 {
				n++
			}
		}
	}
	return n
}
