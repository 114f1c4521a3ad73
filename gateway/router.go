package gateway

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// route is one API endpoint: its method, handler and pre-resolved metric series.
type route struct {
	name    string
	method  string
	handler http.HandlerFunc
	metrics *routeMetrics
}

// routeTable holds the endpoints: exact paths in a map (the hot routes: authenticate, /ws), and
// paths with {name} segments, such as /v2/server/sessions/{session_id}/disconnect, in a list
// matched segment by segment. A path may carry several methods.
type routeTable struct {
	exact    map[string][]*route
	patterns []patternRoute
}

// patternRoute is a path pattern split at '/': a segment "{name}" matches any non-empty
// segment, whose value the handler reads with r.PathValue(name).
type patternRoute struct {
	segments []string
	routes   []*route
}

// routeSpec is one line of the route table.
type routeSpec struct {
	method, path string
	h            http.HandlerFunc
}

func (s *Server) buildRoutes() *routeTable {
	table := []routeSpec{
		{http.MethodGet, "/", s.handleRoot},
		{http.MethodGet, "/healthz", s.handleHealthz},
		{http.MethodGet, "/readyz", s.handleReadyz},
		{http.MethodPost, "/v2/account/authenticate/device", s.handleAuthenticateDevice},
		{http.MethodPost, "/v2/account/authenticate/custom", s.handleAuthenticateCustom},
		{http.MethodPost, "/v2/account/authenticate/email", s.handleAuthenticateEmail},
		{http.MethodPost, "/v2/account/session/refresh", s.handleSessionRefresh},
		{http.MethodPost, "/v2/session/logout", s.handleSessionLogout},
		{http.MethodGet, "/v2/account", s.handleGetAccount},
		{http.MethodGet, "/ws", s.handleSocket},
	}
	table = append(table, s.playRoutes()...)    // api_play.go
	table = append(table, s.serverRoutes()...)  // api_server.go
	table = append(table, s.consoleRoutes()...) // console.go
	return newRouteTable(s.metrics, table)
}

// newRouteTable indexes specs. A route's metric label is its path, or "METHOD path" when
// several methods share the path.
func newRouteTable(m *Metrics, specs []routeSpec) *routeTable {
	methods := make(map[string]int, len(specs))
	for _, sp := range specs {
		methods[sp.path]++
	}
	t := &routeTable{exact: make(map[string][]*route, len(specs))}
	for _, sp := range specs {
		name := sp.path
		if methods[sp.path] > 1 {
			name = sp.method + " " + sp.path
		}
		rt := &route{name: name, method: sp.method, handler: sp.h, metrics: m.forRoute(name)}
		if !strings.Contains(sp.path, "{") {
			t.exact[sp.path] = append(t.exact[sp.path], rt)
			continue
		}
		segs := strings.Split(sp.path, "/")
		found := false
		for i := range t.patterns {
			if slices.Equal(t.patterns[i].segments, segs) {
				t.patterns[i].routes = append(t.patterns[i].routes, rt)
				found = true
			}
		}
		if !found {
			t.patterns = append(t.patterns, patternRoute{segments: segs, routes: []*route{rt}})
		}
	}
	return t
}

// lookup finds the routes of path, setting the request's path values for a pattern match.
func (t *routeTable) lookup(path string, r *http.Request) []*route {
	if rts, ok := t.exact[path]; ok {
		return rts
	}
	if len(t.patterns) == 0 {
		return nil
	}
	segs := strings.Split(path, "/")
next:
	for _, p := range t.patterns {
		if len(p.segments) != len(segs) {
			continue
		}
		for i, ps := range p.segments {
			if isParam(ps) {
				if segs[i] == "" {
					continue next
				}
			} else if ps != segs[i] {
				continue next
			}
		}
		for i, ps := range p.segments {
			if isParam(ps) {
				r.SetPathValue(ps[1:len(ps)-1], segs[i])
			}
		}
		return p.routes
	}
	return nil
}

func isParam(seg string) bool { return len(seg) > 2 && seg[0] == '{' && seg[len(seg)-1] == '}' }

// forMethod picks the route of method among rts (HEAD is served by GET).
func forMethod(rts []*route, method string) *route {
	for _, rt := range rts {
		if rt.method == method {
			return rt
		}
	}
	if method == http.MethodHead {
		return forMethod(rts, http.MethodGet)
	}
	return nil
}

type routeKey struct{}

// routeName returns the matched route's name for logs, or the raw path when none matched.
func routeName(r *http.Request) string {
	if rt, ok := r.Context().Value(routeKey{}).(*route); ok {
		return rt.name
	}
	return r.URL.Path
}

// ServeHTTP routes a request: CORS first (so browsers see the headers even on errors), then
// the exact-path route table, body cap, metrics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h := w.Header()
	// A browser sends Origin on same-origin POSTs too (the console's): those are not CORS.
	if origin := r.Header.Get("Origin"); origin != "" && !isSameOrigin(origin, r.Host) {
		if !s.allowOrigin(h, origin) {
			s.writeError(w, r, errorf(7, "Origin not allowed."))
			s.preflight.observe(http.StatusForbidden, time.Since(start))
			return
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, User-Agent")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusOK)
			s.preflight.observe(http.StatusOK, time.Since(start))
			return
		}
	}

	path := r.URL.Path
	if len(path) > 1 && path[len(path)-1] == '/' {
		// Nakama's docs write some paths with a trailing slash; accept both spellings.
		path = path[:len(path)-1]
	}
	rts := s.routes.lookup(path, r)
	if rts == nil {
		s.writeError(w, r, errorf(5, "Not Found"))
		s.notFound.observe(http.StatusNotFound, time.Since(start))
		return
	}
	rt := forMethod(rts, r.Method)
	if rt == nil {
		s.writeError(w, r, errorf(codeUnimplemented, "Method Not Allowed"))
		s.badMethod.observe(http.StatusNotImplemented, time.Since(start))
		return
	}
	h.Set("Cache-Control", "no-store, no-cache, must-revalidate")
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes)
	r = r.WithContext(context.WithValue(r.Context(), routeKey{}, rt))
	sw := statusWriter{ResponseWriter: w, code: http.StatusOK}
	rt.handler(&sw, r)
	rt.metrics.observe(sw.code, time.Since(start))
}

// allowOrigin sets the CORS response headers for an allowed origin and reports whether the
// origin is allowed.
func (s *Server) allowOrigin(h http.Header, origin string) bool {
	if s.anyOrigin {
		h.Set("Access-Control-Allow-Origin", "*")
		return true
	}
	if !s.origins[origin] {
		return false
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	return true
}

// isSameOrigin reports whether an Origin header names the host the request was sent to.
func isSameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, host)
}

// statusWriter remembers the status code for metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer (flush, hijack).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// clientIP is the address rate limits count against: the TCP peer, or the last hop of
// X-Forwarded-For when the operator says a trusted proxy sets it.
func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.TrustForwardedFor {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			if i := strings.LastIndexByte(xff, ','); i >= 0 {
				xff = xff[i+1:]
			}
			if ip := strings.TrimSpace(xff); ip != "" {
				return ip
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
