package pac

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const directPAC = `function FindProxyForURL(url, host) { return "DIRECT"; }`

// pacServer serves a PAC with an ETag and Last-Modified, answers 304 to a
// matching conditional request, and records what it was asked.
type pacServer struct {
	mu     sync.Mutex
	body   string
	etag   string
	status int
	asked  []string
}

func (p *pacServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = append(p.asked, r.Header.Get("If-None-Match")+"|"+r.Header.Get("If-Modified-Since"))
	if p.status != 0 {
		w.WriteHeader(p.status)
		return
	}
	if r.Header.Get("If-None-Match") == p.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", p.etag)
	w.Header().Set("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT")
	w.Header().Set("Content-Type", "application/x-ns-proxy-autoconfig")
	_, _ = w.Write([]byte(p.body))
}

func TestLoaderHTTP(t *testing.T) {
	ps := &pacServer{body: directPAC, etag: `"v1"`}
	srv := httptest.NewServer(ps)
	defer srv.Close()
	l, err := NewLoader(srv.URL+"/proxy.pac", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := l.Load(ctx)
	if err != nil || s == nil {
		t.Fatalf("first load: %v %v", s, err)
	}
	if s2, err := l.Load(ctx); err != nil || s2 != nil {
		t.Fatalf("unchanged load: %v %v, want nil, nil", s2, err)
	}
	ps.mu.Lock()
	ps.body, ps.etag = `function FindProxyForURL(url, host) { return "PROXY p:1"; }`, `"v2"`
	ps.mu.Unlock()
	s3, err := l.Load(ctx)
	if err != nil || s3 == nil || s3.SHA256 == s.SHA256 {
		t.Fatalf("changed load: %v %v", s3, err)
	}
	want := []string{"|", `"v1"|Tue, 01 Dec 2026 10:00:00 GMT`, `"v1"|Tue, 01 Dec 2026 10:00:00 GMT`}
	if strings.Join(ps.asked, ",") != strings.Join(want, ",") {
		t.Errorf("conditional headers %q, want %q", ps.asked, want)
	}
}

func TestLoaderErrors(t *testing.T) {
	ps := &pacServer{status: http.StatusNotFound}
	srv := httptest.NewServer(ps)
	defer srv.Close()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	tests := []struct {
		name, location string
		want           error
		msg            string
	}{
		{"missing file", filepath.Join(dir, "none.pac"), ErrFetch, "no such file"},
		{"status", srv.URL + "/proxy.pac", ErrFetch, "HTTP status 404 Not Found"},
		{"refused", closedURL + "/proxy.pac", ErrFetch, "refused"},
		{"broken", write("broken.pac", "function FindProxyForURL(url, host) {"), ErrCompile, "does not compile"},
		{"oversized", write("big.pac", directPAC+"//"+strings.Repeat("x", MaxScriptSize)), ErrTooLarge, "more than 1048576 bytes"},
		{"password hidden", "http://ops:secret@" + strings.TrimPrefix(srv.URL, "http://") + "/p.pac", ErrFetch, "404"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewLoader(tc.location, nil)
			if err == nil {
				_, err = l.Load(context.Background())
			}
			var le *LoadError
			if !errors.As(err, &le) || !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want a LoadError wrapping %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "secret") {
				t.Errorf("message %q, want it to contain %q and no password", err, tc.msg)
			}
		})
	}
}

// TestLiveFile: a PAC file that is edited is reloaded; a broken edit is
// reported and the last good script stays in use.
func TestLiveFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "proxy.pac")
	if err := os.WriteFile(p, []byte(directPAC), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := NewLive(p, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	changed := make(chan *Engine, 4)
	failed := make(chan error, 64)
	go l.Run(ctx, 20*time.Millisecond, func(e *Engine) { changed <- e }, func(err error) {
		select {
		case failed <- err:
		default: // the test reads the first few; later ones may go
		}
	})
	if err := os.WriteFile(p, []byte("function FindProxyForURL(u, h) {"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := <-failed; !errors.Is(err, ErrCompile) {
		t.Fatalf("refresh error %v, want ErrCompile", err)
	}
	if d, err := l.FindProxy(ctx, Target{Scheme: "https", Host: "a"}); err != nil || d.Answer != "DIRECT" {
		t.Errorf("after a broken edit: %q %v, want the last good PAC", d.Answer, err)
	}
	if err := os.WriteFile(p, []byte(`function FindProxyForURL(u, h) { return "PROXY p:1"; }`), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-changed:
		if d, err := e.FindProxy(ctx, Target{Scheme: "https", Host: "a"}); err != nil || d.Answer != "PROXY p:1" {
			t.Errorf("refreshed script answers %q %v", d.Answer, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("refresh never reported the new script")
	}
}
