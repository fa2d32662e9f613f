package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	var sick atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/signin" || sick.Load() {
			http.Error(w, "no", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	if err := run([]string{"healthcheck", "-listen", addr}); err != nil {
		t.Fatalf("healthcheck of a serving demo: %v", err)
	}
	sick.Store(true)
	if err := run([]string{"healthcheck", "-listen", addr}); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("healthcheck of a failing demo: %v", err)
	}
	srv.Close()
	if err := run([]string{"healthcheck", "-listen", addr}); err == nil {
		t.Fatal("healthcheck of a stopped demo succeeded")
	}
}
