package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

func (s *Server) handleRoot(w http.ResponseWriter, _ *http.Request) {
	w.WriteHeader(http.StatusOK)
}

// handleHealthz answers while the process serves HTTP at all: a liveness probe.
func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}`))
}

// handleReadyz answers 200 only when the node can serve correctly: its stores answer and its
// revocation cache is synced. Load balancers should route by it.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	if s.rt.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"unavailable","reason":"draining"}`))
		return
	}
	err := s.auth.Ready(ctx)
	if err == nil {
		err = s.cluster.ready()
	}
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		reason, _ := json.Marshal(err.Error()) // a string always marshals
		_, _ = w.Write([]byte(`{"status":"unavailable","reason":` + string(reason) + `}`))
		return
	}
	_, _ = w.Write([]byte(`{"status":"ok"}`))
}
