package pac

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestLive: a PAC server that first fails, then serves a PAC, then one
// without FindProxyForURL, then a new PAC. The Live answers ErrNotLoaded,
// then the PAC's decisions, keeps the last good PAC through the bad one,
// and swaps in the new one.
func TestLive(t *testing.T) {
	var mu sync.Mutex
	bodies := []string{"", `function FindProxyForURL(u, h) { return "PROXY first:1"; }`, "var x = 1;",
		`function FindProxyForURL(u, h) { return "PROXY second:1"; }`}
	step := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if bodies[step] == "" {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(bodies[step]))
	}))
	defer srv.Close()
	advance := func() { mu.Lock(); step++; mu.Unlock() }

	l, err := NewLive(srv.URL+"/wpad.dat", Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tg := Target{Scheme: "https", Host: "a.example"}
	if err := l.Start(ctx); !errors.Is(err, ErrFetch) {
		t.Fatalf("start: %v, want ErrFetch", err)
	}
	if _, err := l.FindProxy(ctx, tg); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("before any PAC: %v", err)
	}
	changed := make(chan *Engine, 4)
	failed := make(chan error, 16)
	go l.Run(ctx, 20*time.Millisecond, func(e *Engine) { changed <- e }, func(err error) {
		select {
		case failed <- err:
		default: // the test reads the first few; later ones may go
		}
	})
	<-failed
	advance()
	waitEngine(t, changed)
	if d, err := l.FindProxy(ctx, tg); err != nil || d.Answer != "PROXY first:1" {
		t.Fatalf("first PAC: %+v %v", d, err)
	}
	advance()
	for err := range failed {
		if errors.Is(err, ErrNoFunction) {
			break
		}
	}
	if d, err := l.FindProxy(ctx, tg); err != nil || d.Answer != "PROXY first:1" {
		t.Fatalf("after a bad PAC: %+v %v, want the last good one", d, err)
	}
	advance()
	waitEngine(t, changed)
	if d, err := l.FindProxy(ctx, tg); err != nil || d.Answer != "PROXY second:1" {
		t.Fatalf("second PAC: %+v %v", d, err)
	}
}

func waitEngine(t *testing.T, changed chan *Engine) {
	t.Helper()
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("no new engine")
	}
}
