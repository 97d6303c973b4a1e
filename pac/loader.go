package pac

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// ErrFetch: the PAC could not be read from its file or URL (a network
// error, or an HTTP status other than 200 and 304).
var ErrFetch = errors.New("PAC could not be fetched")

// LoadError is a failed load. Err wraps ErrFetch, ErrTooLarge or
// ErrCompile; the caller logs it as a pac_failed event.
type LoadError struct {
	// Location is the file path or URL, with any URL password removed.
	Location string
	Err      error
}

func (e *LoadError) Error() string {
	// An error of New already says "pac:"; once is enough.
	return "pac: " + e.Location + ": " + strings.TrimPrefix(e.Err.Error(), "pac: ")
}
func (e *LoadError) Unwrap() error { return e.Err }

// Loader reads a PAC from a file path or an http(s) URL, and reads it again
// only when it changed: a URL is asked with If-None-Match and
// If-Modified-Since, a file by its content. A Loader is not safe for
// concurrent use; one goroutine refreshes it.
type Loader struct {
	location string
	u        *url.URL
	client   *http.Client
	etag     string
	modified string
	sha      string
}

// DefaultFetchTimeout bounds one fetch of a PAC URL.
const DefaultFetchTimeout = 15 * time.Second

// NewLoader returns a Loader for location: an http:// or https:// URL, or
// a file path. client fetches URLs; nil means a client that uses no proxy
// (the PAC server is reached directly, as Windows does for WPAD) and gives
// up after DefaultFetchTimeout.
func NewLoader(location string, client *http.Client) (*Loader, error) {
	l := &Loader{location: location, client: client}
	if strings.HasPrefix(location, "http://") || strings.HasPrefix(location, "https://") {
		u, err := url.Parse(location)
		if err != nil || u.Host == "" {
			return nil, &LoadError{Location: redact(location), Err: fmt.Errorf("%w: not a URL", ErrFetch)}
		}
		l.u = u
		if l.client == nil {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.Proxy = nil
			l.client = &http.Client{Transport: tr, Timeout: DefaultFetchTimeout}
		}
	}
	return l, nil
}

// Location is the PAC's path or URL, any URL password removed.
func (l *Loader) Location() string { return redact(l.location) }

func redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	return s
}

// Load reads and compiles the PAC. It returns nil and no error when the
// PAC has not changed since the last successful Load; errors are
// *LoadError.
func (l *Loader) Load(ctx context.Context) (*Script, error) {
	src, notModified, err := l.read(ctx)
	if err != nil {
		return nil, &LoadError{Location: l.Location(), Err: err}
	}
	if notModified {
		return nil, nil
	}
	sum := sha256.Sum256(src)
	if sha := hex.EncodeToString(sum[:]); sha == l.sha {
		return nil, nil
	}
	s, err := compile(l.Location(), src)
	if err != nil {
		return nil, &LoadError{Location: l.Location(), Err: err}
	}
	l.sha = s.SHA256
	return s, nil
}

func (l *Loader) read(ctx context.Context) ([]byte, bool, error) {
	if l.u == nil {
		f, err := os.Open(l.location)
		if err != nil {
			return nil, false, fmt.Errorf("%w: %w", ErrFetch, err)
		}
		defer f.Close()
		return readCapped(f)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.location, nil)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	if l.sha != "" {
		if l.etag != "" {
			req.Header.Set("If-None-Match", l.etag)
		}
		if l.modified != "" {
			req.Header.Set("If-Modified-Since", l.modified)
		}
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrFetch, stripURL(err))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		if l.sha != "" {
			return nil, true, nil
		}
	case http.StatusOK:
		src, _, err := readCapped(resp.Body)
		if err != nil {
			return nil, false, err
		}
		l.etag, l.modified = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
		return src, false, nil
	}
	return nil, false, fmt.Errorf("%w: HTTP status %s", ErrFetch, resp.Status)
}

// stripURL drops the URL from a client error: it is already in
// LoadError.Location, and it may hold a password.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func readCapped(r io.Reader) ([]byte, bool, error) {
	src, err := io.ReadAll(io.LimitReader(r, MaxScriptSize+1))
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	if len(src) > MaxScriptSize {
		return nil, false, fmt.Errorf("more than %d bytes: %w", MaxScriptSize, ErrTooLarge)
	}
	return src, false, nil
}
