package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestRouteTablePatterns: exact paths win, {name} segments match one non-empty segment and set
// the path value, several methods share a path, and HEAD falls back to GET.
func TestRouteTablePatterns(t *testing.T) {
	var got string
	h := func(tag string) http.HandlerFunc {
		return func(_ http.ResponseWriter, r *http.Request) { got = tag + ":" + r.PathValue("id") }
	}
	m := NewMetrics()
	rt := newRouteTable(m, []routeSpec{
		{http.MethodGet, "/v2/things", h("list")},
		{http.MethodPost, "/v2/things", h("create")},
		{http.MethodGet, "/v2/things/{id}", h("get")},
		{http.MethodDelete, "/v2/things/{id}", h("delete")},
		{http.MethodPost, "/v2/things/{id}/refresh", h("refresh")},
		{http.MethodGet, "/v2/things/special", h("special")},
	})
	cases := []struct {
		method, path, want string
		ok                 bool
	}{
		{http.MethodGet, "/v2/things", "list:", true},
		{http.MethodPost, "/v2/things", "create:", true},
		{http.MethodGet, "/v2/things/abc", "get:abc", true},
		{http.MethodHead, "/v2/things/abc", "get:abc", true},
		{http.MethodDelete, "/v2/things/abc", "delete:abc", true},
		{http.MethodPost, "/v2/things/abc/refresh", "refresh:abc", true},
		{http.MethodGet, "/v2/things/special", "special:", true},
		{http.MethodPut, "/v2/things/abc", "", false},
		{http.MethodGet, "/v2/things//refresh", "", false},
		{http.MethodGet, "/v2/things/abc/def", "", false},
		{http.MethodGet, "/v2/other", "", false},
	}
	for _, c := range cases {
		got = ""
		r := httptest.NewRequest(c.method, c.path, nil)
		rts := rt.lookup(c.path, r)
		route := forMethod(rts, c.method)
		if (route != nil) != c.ok {
			t.Errorf("%s %s: matched %v, want %v", c.method, c.path, route != nil, c.ok)
			continue
		}
		if route == nil {
			continue
		}
		route.handler(nil, r)
		if got != c.want {
			t.Errorf("%s %s: handler %q, want %q", c.method, c.path, got, c.want)
		}
	}
	if n := len(rt.exact["/v2/things"]); n != 2 {
		t.Errorf("exact /v2/things has %d routes, want 2", n)
	}
	if rts := rt.exact["/v2/things"]; rts[0].name != "GET /v2/things" {
		t.Errorf("shared path metric label %q, want %q", rts[0].name, "GET /v2/things")
	}
}

// TestCheckHTTPKey: Bearer header or http_key query; anything else is 401 code 16.
func TestCheckHTTPKey(t *testing.T) {
	s := &Server{cfg: Config{HTTPKey: "k3y"}}
	cases := []struct {
		name, url, header string
		ok                bool
	}{
		{"bearer", "/x", "Bearer k3y", true},
		{"query", "/x?http_key=k3y", "", true},
		{"missing", "/x", "", false},
		{"wrong bearer", "/x", "Bearer nope", false},
		{"basic", "/x", "Basic azN5Og==", false},
		{"wrong query", "/x?http_key=nope", "Bearer k3y", false},
	}
	for _, c := range cases {
		r := httptest.NewRequest(http.MethodPost, c.url, nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		err := s.checkHTTPKey(r)
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
