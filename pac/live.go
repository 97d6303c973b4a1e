package pac

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"
)

// ErrNotLoaded is what Live.FindProxy returns while no PAC has loaded: the
// caller takes its fallback route (parent.url or direct), as browsers do.
var ErrNotLoaded = errors.New("no PAC loaded")

// Live is the PAC of parent.pac kept current: loaded by Start, reloaded by
// Run, each new script swapped in atomically with a fresh Engine (and so a
// fresh decision cache). A reload that fails keeps the last good Engine.
// FindProxy is safe for concurrent use with Run.
type Live struct {
	loader *Loader
	opts   Options
	cur    atomic.Pointer[Engine]
}

// NewLive prepares a Live for location (a file path or an http(s) URL);
// client fetches URLs (nil: no proxy, DefaultFetchTimeout). Nothing is
// fetched until Start.
func NewLive(location string, opts Options, client *http.Client) (*Live, error) {
	l, err := NewLoader(location, client)
	if err != nil {
		return nil, err
	}
	return &Live{loader: l, opts: opts}, nil
}

// Location is the PAC's path or URL, any URL password removed.
func (l *Live) Location() string { return l.loader.Location() }

// Start loads the PAC and builds its Engine. The error is a *LoadError or
// an error of New (ErrNoFunction, ErrScript, ErrTimeout): the caller logs
// pac_failed and may go on with its fallback; Run retries.
func (l *Live) Start(ctx context.Context) error {
	_, err := l.reload(ctx)
	return err
}

func (l *Live) reload(ctx context.Context) (*Engine, error) {
	s, err := l.loader.Load(ctx)
	if err != nil || s == nil {
		return nil, err
	}
	e, err := New(s, l.opts)
	if err != nil {
		return nil, &LoadError{Location: l.loader.Location(), Err: err}
	}
	l.cur.Store(e)
	return e, nil
}

// Run reloads the PAC every interval until ctx ends. changed receives each
// new Engine, failed each error (either may be nil).
func (l *Live) Run(ctx context.Context, every time.Duration, changed func(*Engine), failed func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e, err := l.reload(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			if failed != nil {
				failed(err)
			}
		case e != nil && changed != nil:
			changed(e)
		}
	}
}

// Engine is the current Engine, nil while no PAC has loaded.
func (l *Live) Engine() *Engine { return l.cur.Load() }

// FindProxy asks the current Engine; ErrNotLoaded while there is none.
func (l *Live) FindProxy(ctx context.Context, t Target) (Decision, error) {
	e := l.cur.Load()
	if e == nil {
		return Decision{}, ErrNotLoaded
	}
	return e.FindProxy(ctx, t)
}
