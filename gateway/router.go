package gateway

import (
	"context"
	"net"
	"net/http"
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

func (s *Server) buildRoutes() map[string]*route {
	table := []struct {
		method, path string
		h            http.HandlerFunc
	}{
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
	routes := make(map[string]*route, len(table))
	for _, t := range table {
		routes[t.path] = &route{name: t.path, method: t.method, handler: t.h, metrics: s.metrics.forRoute(t.path)}
	}
	return routes
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
	if origin := r.Header.Get("Origin"); origin != "" {
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
	rt := s.routes[path]
	if rt == nil {
		s.writeError(w, r, errorf(5, "Not Found"))
		s.notFound.observe(http.StatusNotFound, time.Since(start))
		return
	}
	if r.Method != rt.method && !(r.Method == http.MethodHead && rt.method == http.MethodGet) {
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
