package main

import (
	"bufio"
	"encoding/json"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sessiongate/sessiongate/internal/redisproc"
	"github.com/sessiongate/sessiongate/internal/redisurl"
)

// The deployment kit (deploy/) is checked here: the compose file and the Prometheus and
// Grafana files parse and agree with each other, every gateway service's environment is one
// this binary accepts, and every metric the dashboard queries is served by a real node.

const deployDir = "../../deploy"

// readJSONYAML reads a deploy file: YAML written in its JSON subset, after '#' comment lines.
func readJSONYAML(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var body []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			body = append(body, line)
		}
	}
	dec := json.NewDecoder(strings.NewReader(strings.Join(body, "\n")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// composeFile is the part of the Compose specification deploy/docker-compose.yml uses; any
// other key fails the decoding, so a typo cannot pass unnoticed.
type composeFile struct {
	Name     string                    `json:"name"`
	Services map[string]composeService `json:"services"`
	Volumes  map[string]struct{}       `json:"volumes"`
}

type composeService struct {
	Image       string            `json:"image"`
	Build       *composeBuild     `json:"build"`
	Command     []string          `json:"command"`
	Environment map[string]string `json:"environment"`
	Ports       []string          `json:"ports"`
	Volumes     []string          `json:"volumes"`
	DependsOn   json.RawMessage   `json:"depends_on"`
	Healthcheck *struct {
		Test     []string `json:"test"`
		Interval string   `json:"interval"`
		Timeout  string   `json:"timeout"`
		Retries  int      `json:"retries"`
	} `json:"healthcheck"`
	StopGracePeriod string `json:"stop_grace_period"`
	Restart         string `json:"restart"`
}

type composeBuild struct {
	Context    string `json:"context"`
	Dockerfile string `json:"dockerfile"`
}

// dependsOn lists a service's dependencies, in either of Compose's two forms.
func (s composeService) dependsOn(t *testing.T) []string {
	t.Helper()
	if len(s.DependsOn) == 0 {
		return nil
	}
	var list []string
	if json.Unmarshal(s.DependsOn, &list) == nil {
		return list
	}
	var long map[string]struct {
		Condition string `json:"condition"`
	}
	if err := json.Unmarshal(s.DependsOn, &long); err != nil {
		t.Fatalf("depends_on: %v", err)
	}
	for name, d := range long {
		if !slices.Contains([]string{"service_started", "service_healthy", "service_completed_successfully"}, d.Condition) {
			t.Errorf("depends_on %s: unknown condition %q", name, d.Condition)
		}
		list = append(list, name)
	}
	return list
}

// interpolation matches Compose's ${NAME:-default} and ${NAME-default}.
var interpolation = regexp.MustCompile(`\$\{([A-Z0-9_]+)(:?-)([^}]*)\}`)

// composeEnv is a service's environment as the container sees it when the operator sets
// nothing: every ${NAME:-default} replaced by its default. A bare $ other than those fails.
func composeEnv(t *testing.T, svc composeService) map[string]string {
	t.Helper()
	out := make(map[string]string, len(svc.Environment))
	for k, v := range svc.Environment {
		v = interpolation.ReplaceAllString(v, "$3")
		if strings.Contains(v, "$") {
			t.Errorf("%s=%q: interpolation without a default", k, svc.Environment[k])
		}
		out[k] = v
	}
	return out
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	readJSONYAML(t, "docker-compose.yml", &c)
	return c
}

// gatewayServices are the compose services that run the gateway image, by name.
func gatewayServices(c composeFile) []string {
	var names []string
	for name, svc := range c.Services {
		if svc.Environment["SESSIONGATE_NODE_ID"] != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// TestComposeFile checks deploy/docker-compose.yml: Redis with persistence and a health
// check, three gateway nodes of one image built from this repository, each with an environment
// this binary accepts (node id, Redis URL on the compose network, the same secrets on every
// node), distinct published ports mapped to the nodes' listen ports, and Prometheus and Grafana
// mounting files that exist.
func TestComposeFile(t *testing.T) {
	c := loadCompose(t)
	redisSvc, ok := c.Services["redis"]
	if !ok {
		t.Fatal("no redis service")
	}
	if !slices.Contains(redisSvc.Command, "--appendonly") || redisSvc.Healthcheck == nil {
		t.Errorf("redis: want AOF persistence and a health check, got command %v", redisSvc.Command)
	}
	gws := gatewayServices(c)
	if len(gws) != 3 {
		t.Fatalf("gateway services %v, want 3", gws)
	}
	published := map[string]string{}
	nodeIDs := map[string]bool{}
	var secrets map[string]string
	for _, name := range gws {
		svc := c.Services[name]
		if svc.Image != c.Services[gws[0]].Image {
			t.Errorf("%s: image %q, want the one image %q", name, svc.Image, c.Services[gws[0]].Image)
		}
		if !slices.Contains(svc.dependsOn(t), "redis") {
			t.Errorf("%s: does not depend on redis", name)
		}
		env := composeEnv(t, svc)
		o, err := parseOptions(nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, os.Stderr)
		if err != nil {
			t.Errorf("%s: environment refused: %v", name, err)
			continue
		}
		if err := o.cfg.Defaults().Validate(); err != nil {
			t.Errorf("%s: invalid config: %v", name, err)
		}
		if nodeIDs[o.cfg.NodeID] {
			t.Errorf("%s: node id %q used twice", name, o.cfg.NodeID)
		}
		nodeIDs[o.cfg.NodeID] = true
		if client, err := redisurl.NewClient(o.cfg.RedisURL); err != nil {
			t.Errorf("%s: redis url: %v", name, err)
		} else {
			client.Close()
		}
		if !strings.HasPrefix(o.cfg.RedisURL, "redis://redis:") {
			t.Errorf("%s: redis url %q does not name the redis service", name, o.cfg.RedisURL)
		}
		mine := map[string]string{}
		for _, k := range []string{"server-key", "http-key", "encryption-key", "refresh-encryption-key"} {
			mine[k] = env[envName(k)]
			if mine[k] == "" {
				t.Errorf("%s: %s not set: every node must share it", name, envName(k))
			}
		}
		if secrets == nil {
			secrets = mine
		} else if !maps.Equal(secrets, mine) {
			t.Errorf("%s: secrets differ from %s's", name, gws[0])
		}
		containerPorts := map[string]bool{}
		for _, p := range svc.Ports {
			parts := strings.Split(p, ":")
			if len(parts) != 3 || net.ParseIP(parts[0]) == nil {
				t.Errorf("%s: port %q, want ip:host:container", name, p)
				continue
			}
			if other, dup := published[parts[1]]; dup {
				t.Errorf("%s: host port %s already published by %s", name, parts[1], other)
			}
			published[parts[1]] = name
			containerPorts[parts[2]] = true
		}
		for _, addr := range []string{o.cfg.Addr, o.metricsAddr} {
			_, port, err := net.SplitHostPort(addr)
			if err != nil || !containerPorts[port] {
				t.Errorf("%s: listen address %q not published (ports %v)", name, addr, svc.Ports)
			}
		}
	}
	for _, name := range gws {
		// Each node builds the image (cached after the first), so that none pulls it.
		if b := c.Services[name].Build; b == nil {
			t.Errorf("%s: no build section", name)
		} else if _, err := os.Stat(filepath.Join(deployDir, b.Context, b.Dockerfile)); err != nil {
			t.Errorf("%s: build: %v", name, err)
		}
	}
	for _, name := range []string{"prometheus", "grafana"} {
		svc, ok := c.Services[name]
		if !ok {
			t.Errorf("no %s service", name)
			continue
		}
		for _, v := range svc.Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			if _, err := os.Stat(filepath.Join(deployDir, src)); err != nil {
				t.Errorf("%s: volume %q: %v", name, v, err)
			}
		}
	}
}

// TestPrometheusConfig checks that deploy/prometheus.yml scrapes exactly the compose file's
// gateway nodes, on their metrics port, labelled with their node id.
func TestPrometheusConfig(t *testing.T) {
	c := loadCompose(t)
	var p struct {
		Global        map[string]string `json:"global"`
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			StaticConfigs []struct {
				Targets []string          `json:"targets"`
				Labels  map[string]string `json:"labels"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	readJSONYAML(t, "prometheus.yml", &p)
	var targets []string
	for _, sc := range p.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, port, err := net.SplitHostPort(target)
				if err != nil {
					t.Errorf("target %q: %v", target, err)
					continue
				}
				svc, ok := c.Services[host]
				if !ok {
					t.Errorf("target %q: no such compose service", target)
					continue
				}
				o, err := parseOptions(nil, func(k string) (string, bool) { v, ok := composeEnv(t, svc)[k]; return v, ok }, os.Stderr)
				if err != nil {
					t.Fatal(err)
				}
				if _, mport, _ := net.SplitHostPort(o.metricsAddr); mport != port {
					t.Errorf("target %q: the node serves metrics on %q", target, o.metricsAddr)
				}
				if st.Labels["node"] != o.cfg.NodeID {
					t.Errorf("target %q: label node=%q, want its node id %q", target, st.Labels["node"], o.cfg.NodeID)
				}
				targets = append(targets, host)
			}
		}
	}
	slices.Sort(targets)
	if want := gatewayServices(c); !slices.Equal(targets, want) {
		t.Errorf("scraped %v, want the gateway services %v", targets, want)
	}
}

// TestGrafanaProvisioning checks the provisioning files: the datasource is the compose file's
// Prometheus under the uid the dashboard uses, and the dashboards folder is the one mounted.
func TestGrafanaProvisioning(t *testing.T) {
	var ds struct {
		APIVersion  int `json:"apiVersion"`
		Datasources []struct {
			Name, UID, Type, Access, URL string
			IsDefault                    bool `json:"isDefault"`
		} `json:"datasources"`
	}
	readJSONYAML(t, "grafana/provisioning/datasources/prometheus.yml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].URL != "http://prometheus:9090" || ds.Datasources[0].UID != dashboardDatasourceUID {
		t.Errorf("datasources %+v", ds.Datasources)
	}
	var prov struct {
		APIVersion int `json:"apiVersion"`
		Providers  []struct {
			Name, Type      string
			DisableDeletion bool `json:"disableDeletion"`
			Options         struct {
				Path string `json:"path"`
			} `json:"options"`
		} `json:"providers"`
	}
	readJSONYAML(t, "grafana/provisioning/dashboards/sessiongate.yml", &prov)
	c := loadCompose(t)
	if len(prov.Providers) != 1 || !slices.Contains(c.Services["grafana"].Volumes, "./grafana/dashboards:"+prov.Providers[0].Options.Path+":ro") {
		t.Errorf("dashboard provider %+v does not read the mounted folder (volumes %v)", prov.Providers, c.Services["grafana"].Volumes)
	}
}

const dashboardDatasourceUID = "prometheus"

// dashboard is the part of the Grafana dashboard model the tests read.
type dashboard struct {
	UID    string `json:"uid"`
	Title  string `json:"title"`
	Panels []struct {
		ID         int    `json:"id"`
		Title      string `json:"title"`
		Type       string `json:"type"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(deployDir, "grafana/dashboards/sessiongate.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	return d
}

// promSelector finds the metric names of a PromQL expression (sessiongate's and the Go and
// process collectors'), each with the label matchers in braces right after it.
var (
	promSelector = regexp.MustCompile(`\b((?:sessiongate|process|go)_[a-z0-9_]+)(\{[^}]*\})?`)
	promMatcher  = regexp.MustCompile(`([a-z_]+)\s*(=~|!=|!~|=)\s*"((?:[^"\\]|\\.)*)"`)
)

// TestDashboardMetricsExist runs one node with gw1's compose environment on a real Redis (so
// that the cluster-mode series exist), makes it count an authentication and the cluster calls the panels select,
// scrapes its /metrics, and checks that every metric every dashboard panel queries is there,
// with a series for each label value the panel selects exactly. It also checks that the
// dashboard covers what an operator needs to see.
func TestDashboardMetricsExist(t *testing.T) {
	d := loadDashboard(t)
	srv := redisproc.ForTest(t)
	env := composeEnv(t, loadCompose(t).Services["gw1"])
	env["SESSIONGATE_REDIS_URL"] = srv.URL()
	env["SESSIONGATE_REDIS_PREFIX"] = "deploytest:"
	env["SESSIONGATE_ADDR"] = "127.0.0.1:0"
	env["SESSIONGATE_METRICS_ADDR"] = "127.0.0.1:0"
	env["SESSIONGATE_BCRYPT_COST"] = "4"
	r := startRun(t, nil, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	api := "http://" + r.logLine(t, "api listening")["addr"].(string)
	metrics := "http://" + r.logLine(t, "metrics listening")["addr"].(string) + "/metrics"
	if code := postDevice(t, api, env["SESSIONGATE_SERVER_KEY"], "device-deploy-test-1"); code != 200 {
		t.Fatalf("authenticate: %d", code)
	}
	if code, body := get(t, api+"/v2/server/users/00000000-0000-4000-8000-000000000000/sessions?http_key="+env["SESSIONGATE_HTTP_KEY"]); code != 200 {
		t.Fatalf("sessions: %d %s", code, body)
	}
	// The disconnect panels select their routes' latency series, which exist once a route has
	// served a request: an unknown session and a user with no sockets are answered 404 and 200.
	bearer := "Bearer " + env["SESSIONGATE_HTTP_KEY"]
	if code, body := postJSON(t, api+"/v2/server/sessions/00000000-0000-4000-8000-000000000000/disconnect", "{}", bearer); code != 404 {
		t.Fatalf("session disconnect: %d %s", code, body)
	}
	if code, body := postJSON(t, api+"/v2/server/users/00000000-0000-4000-8000-000000000000/disconnect", "{}", bearer); code != 200 {
		t.Fatalf("user disconnect: %d %s", code, body)
	}
	_, text := get(t, metrics)
	series := parseExposition(t, text)

	if d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard uid %q with %d panels", d.UID, len(d.Panels))
	}
	queried := map[string]bool{}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] || p.Title == "" {
			t.Errorf("panel %d %q: duplicate id or no title", p.ID, p.Title)
		}
		ids[p.ID] = true
		if p.Datasource.UID != dashboardDatasourceUID || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %q, %d targets", p.Title, p.Datasource.UID, len(p.Targets))
		}
		for _, tg := range p.Targets {
			sels := promSelector.FindAllStringSubmatch(tg.Expr, -1)
			if len(sels) == 0 {
				t.Errorf("panel %q %s: no gateway metric in %q", p.Title, tg.RefID, tg.Expr)
			}
			for _, sel := range sels {
				name := sel[1]
				queried[name] = true
				found := series[name]
				if len(found) == 0 {
					t.Errorf("panel %q: metric %s is not in the node's /metrics", p.Title, name)
					continue
				}
				for _, m := range promMatcher.FindAllStringSubmatch(sel[2], -1) {
					if m[2] != "=" {
						continue
					}
					if !slices.ContainsFunc(found, func(labels map[string]string) bool { return labels[m[1]] == m[3] }) {
						t.Errorf("panel %q: no series %s{%s=%q} in the node's /metrics", p.Title, name, m[1], m[3])
					}
				}
			}
		}
	}
	for _, need := range []string{"sessiongate_sockets", "sessiongate_socket_connects_total", "sessiongate_socket_disconnects_total",
		"sessiongate_http_request_duration_seconds_bucket", "sessiongate_auth_outcomes_total", "sessiongate_redis_up", "sessiongate_cluster_bus_up"} {
		if !queried[need] {
			t.Errorf("the dashboard does not query %s", need)
		}
	}
	if up := series["sessiongate_redis_up"]; len(up) != 1 || up[0][valueLabel] != "1" {
		t.Errorf("sessiongate_redis_up %v, want one series of 1", up)
	}
}

// valueLabel holds a sample's value among its labels in parseExposition's result.
const valueLabel = "__value__"

// parseExposition reads the Prometheus text format: the label sets of every sample, by metric
// name (histogram samples under their _bucket, _sum and _count names).
func parseExposition(t *testing.T, text string) map[string][]map[string]string {
	t.Helper()
	out := map[string][]map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		labels := map[string]string{}
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				t.Fatalf("bad sample line %q", line)
			}
			for _, m := range promMatcher.FindAllStringSubmatch(rest[:end+1], -1) {
				labels[m[1]] = m[3]
			}
			rest = rest[end+1:]
		}
		labels[valueLabel] = strings.TrimSpace(rest)
		out[name] = append(out[name], labels)
	}
	return out
}

// TestDockerfile checks that the image runs the gateway with its embedded defaults: the
// binary is the entrypoint with no arguments (so every setting comes from SESSIONGATE_*
// variables, which run reads for every flag), the default API and metrics ports are exposed,
// and it runs as a non-root user.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var entrypoint, user string
	var exposed []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "ENTRYPOINT":
			entrypoint = strings.TrimSpace(strings.TrimPrefix(line, f[0]))
		case "CMD":
			t.Errorf("Dockerfile has a CMD (%q): the image must run the embedded default", line)
		case "EXPOSE":
			exposed = append(exposed, f[1:]...)
		case "USER":
			user = f[1]
		case "ENV":
			t.Errorf("Dockerfile sets %q: settings belong to the operator's environment", line)
		}
	}
	var args []string
	if err := json.Unmarshal([]byte(entrypoint), &args); err != nil || len(args) != 1 {
		t.Errorf("ENTRYPOINT %q, want the binary alone in exec form", entrypoint)
	}
	o, err := parseOptions(nil, func(string) (string, bool) { return "", false }, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{o.cfg.Addr, o.metricsAddr} {
		if _, port, _ := net.SplitHostPort(addr); !slices.Contains(exposed, port) {
			t.Errorf("default listen address %s not exposed (EXPOSE %v)", addr, exposed)
		}
	}
	if user == "" || strings.HasPrefix(user, "root") || strings.HasPrefix(user, "0") {
		t.Errorf("USER %q, want a non-root user", user)
	}
}
