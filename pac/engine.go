package pac

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dlclark/regexp2"
	"github.com/dop251/goja"
)

// RegexpTimeout bounds one regular-expression match of a script. goja runs
// patterns that Go's regexp cannot (backreferences, lookaround) on
// regexp2, inside one native call that an interrupt cannot stop, and a
// hostile pattern backtracks for hours. regexp2 reads its default when a
// pattern is compiled, so it is set once for the process; goja then treats
// a timed-out match as no match, and the evaluation's own time limit takes
// over at the next instruction. Only goja uses regexp2 in m365tap.
const RegexpTimeout = time.Second

func init() {
	if regexp2.DefaultMatchTimeout > RegexpTimeout {
		regexp2.DefaultMatchTimeout = RegexpTimeout
	}
}

// Resolver is the DNS the helpers ask: the tap's own (hosts overrides and
// dns.servers), so a PAC sees the names the tap dials. *net.Resolver
// satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options bound and feed an Engine. The zero value of each field says
// what it means.
type Options struct {
	// Resolver answers the DNS helpers. Nil: net.DefaultResolver.
	Resolver Resolver
	// Location is the zone of the date and time helpers: the PC's zone.
	// Nil: time.Local.
	Location *time.Location
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// MyIP, when valid, is what myIpAddress() answers for every client
	// (pac.my_ip). Invalid: the client address of each evaluation.
	MyIP netip.Addr
	// EvalTimeout bounds one evaluation, DNS included. Zero: DefaultEvalTimeout.
	EvalTimeout time.Duration
	// CallTimeout bounds one DNS call the script makes. Zero: the smaller
	// of DefaultCallTimeout and EvalTimeout.
	CallTimeout time.Duration
	// MaxLookups bounds the DNS lookups of one evaluation (a name asked
	// twice counts once). Zero: DefaultMaxLookups.
	MaxLookups int
	// MaxCallDepth bounds the script's call stack, so deep recursion is an
	// error rather than a crash. Zero: DefaultMaxCallDepth.
	MaxCallDepth int
	// Runtimes is how many evaluations run at once. Zero: GOMAXPROCS.
	Runtimes int
	// CacheTTL is how long a decision is reused for the same scheme, host,
	// port and client. Zero: DefaultCacheTTL; negative: no cache.
	CacheTTL time.Duration
	// CacheSize bounds the cached decisions. Zero: DefaultCacheSize.
	CacheSize int
	// Alert receives the messages of alert(). Nil: they are dropped.
	Alert func(msg string)
}

// Defaults of Options.
const (
	DefaultEvalTimeout  = 2 * time.Second
	DefaultCallTimeout  = time.Second
	DefaultMaxLookups   = 16
	DefaultMaxCallDepth = 1000
	DefaultCacheTTL     = 30 * time.Second
	DefaultCacheSize    = 4096
)

func (o Options) withDefaults() Options {
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.EvalTimeout <= 0 {
		o.EvalTimeout = DefaultEvalTimeout
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = min(DefaultCallTimeout, o.EvalTimeout)
	}
	if o.MaxLookups <= 0 {
		o.MaxLookups = DefaultMaxLookups
	}
	if o.MaxCallDepth <= 0 {
		o.MaxCallDepth = DefaultMaxCallDepth
	}
	if o.Runtimes <= 0 {
		o.Runtimes = runtime.GOMAXPROCS(0)
	}
	if o.CacheTTL == 0 {
		o.CacheTTL = DefaultCacheTTL
	}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	return o
}

// Target is the destination a PAC is asked about, as Windows asks it.
type Target struct {
	// Scheme is "http" for a plain request, "https" for a CONNECT.
	Scheme string
	// Host is the destination host without port or brackets.
	Host string
	// Port is the destination port; 0 means the scheme's default.
	Port uint16
	// URL is a plain request's full URL, passed to the PAC as it is. Nil
	// (a CONNECT): scheme://host[:port]/, as Windows builds it for a
	// tunnel. Only read on a cache miss, so building it costs nothing on
	// the request path.
	URL *url.URL
	// Client is the PC's address (the connection's source), what
	// myIpAddress() answers unless Options.MyIP is set.
	Client netip.Addr
}

// Decision is the outcome of one evaluation.
type Decision struct {
	// Answer is what FindProxyForURL(Ex) returned.
	Answer string
	// Hops are the entries of Answer that could be read, in order. The
	// first one is the way out (WinHTTP uses it); the others are failovers.
	Hops []Hop
	// AnswerErr is the first entry of Answer that could not be read (an
	// *AnswerError), or nil.
	AnswerErr error
	// Func is the function called: FindProxyForURLEx when the script
	// defines it (as Windows prefers), else FindProxyForURL.
	Func string
	// URL and Host are the arguments the function was given.
	URL, Host string
	// Elapsed is the evaluation's duration; Lookups and FailedLookups
	// count the DNS lookups it made.
	Elapsed       time.Duration
	Lookups       int
	FailedLookups int
	// Cached is true when the decision was reused rather than evaluated.
	Cached bool
}

// EvalError is a failed evaluation: Err is one of ErrScript, ErrTimeout,
// ErrLookups or ErrResult.
type EvalError struct {
	URL    string
	Err    error
	Detail string
}

func (e *EvalError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("pac: FindProxyForURL(%q): %v", e.URL, e.Err)
	}
	return fmt.Sprintf("pac: FindProxyForURL(%q): %v: %s", e.URL, e.Err, e.Detail)
}

func (e *EvalError) Unwrap() error { return e.Err }

// Engine evaluates one Script. It is safe for concurrent use.
type Engine struct {
	script *Script
	fn     string
	opts   Options
	pool   pool
	cache  cache
	epoch  time.Time
}

// jsrt is one goja runtime with the script loaded, and the state of the
// evaluation running on it.
type jsrt struct {
	e    *Engine
	vm   *goja.Runtime
	find goja.Callable
	fn   string
	st   evalState
}

type evalState struct {
	ctx           context.Context
	client        netip.Addr
	now           time.Time
	lookups       int
	failedLookups int
	dns           map[string][]netip.Addr
}

// New loads s into a first runtime, which runs the script's top level and
// checks that it defines FindProxyForURL or FindProxyForURLEx, within
// opts.EvalTimeout. Its errors wrap ErrNoFunction, ErrScript, ErrTimeout or
// ErrLookups.
func New(s *Script, opts Options) (*Engine, error) {
	e := &Engine{script: s, opts: opts.withDefaults(), epoch: time.Now()}
	e.pool.init(e.opts.Runtimes)
	e.cache.init(e.opts.CacheSize)
	<-e.pool.slots
	rt, err := e.newRuntime(context.Background())
	if err != nil {
		return nil, err
	}
	e.fn = rt.fn
	e.pool.put(rt)
	return e, nil
}

// Func is the function the engine calls: FindProxyForURLEx when the
// script defines it, else FindProxyForURL.
func (e *Engine) Func() string { return e.fn }

// Script is the script the engine runs.
func (e *Engine) Script() *Script { return e.script }

func (e *Engine) newRuntime(ctx context.Context) (*jsrt, error) {
	rt := &jsrt{e: e, vm: goja.New()}
	rt.vm.SetMaxCallStackSize(e.opts.MaxCallDepth)
	rt.install()
	err := rt.guard(ctx, func() error {
		_, err := rt.vm.RunProgram(e.script.prog)
		return err
	})
	if err != nil {
		return nil, rt.classify("(script)", err)
	}
	for _, name := range []string{"FindProxyForURLEx", "FindProxyForURL"} {
		if f, ok := goja.AssertFunction(rt.vm.Get(name)); ok {
			rt.find, rt.fn = f, name
			return rt, nil
		}
	}
	return nil, fmt.Errorf("pac: %w", ErrNoFunction)
}

// guard runs fn with the evaluation state set and the time limit armed.
func (rt *jsrt) guard(ctx context.Context, fn func() error) error {
	e := rt.e
	rt.st = evalState{ctx: ctx, now: e.opts.Now().In(e.opts.Location), dns: map[string][]netip.Addr{}}
	ctx, cancel := context.WithTimeout(ctx, e.opts.EvalTimeout)
	defer cancel()
	rt.st.ctx = ctx
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		// The caller's cancellation and the time limit both stop the
		// script; either way the evaluation did not finish in time.
		rt.vm.Interrupt(ErrTimeout)
		close(fired)
	})
	err := fn()
	if !stop() {
		// The interrupt is under way: let it land before the runtime is
		// cleared and reused, or it would stop the next evaluation.
		<-fired
		if err == nil {
			// The script finished between the deadline and the interrupt
			// (a DNS helper gave up at the deadline, say): still too late.
			err = errLate
		}
	}
	return err
}

// errLate is an evaluation that returned after its time limit.
var errLate = errors.New("returned after the time limit")

func (rt *jsrt) classify(url string, err error) error {
	var ie *goja.InterruptedError
	if errors.Is(err, errLate) {
		return &EvalError{URL: url, Err: ErrTimeout, Detail: "after " + rt.e.opts.EvalTimeout.String()}
	}
	if errors.As(err, &ie) {
		if cause, ok := ie.Value().(error); ok && errors.Is(cause, ErrLookups) {
			return &EvalError{URL: url, Err: ErrLookups, Detail: "more than " + strconv.Itoa(rt.e.opts.MaxLookups)}
		}
		return &EvalError{URL: url, Err: ErrTimeout, Detail: "after " + rt.e.opts.EvalTimeout.String()}
	}
	var se *goja.StackOverflowError
	if errors.As(err, &se) {
		return &EvalError{URL: url, Err: ErrScript, Detail: "call stack deeper than " + strconv.Itoa(rt.e.opts.MaxCallDepth)}
	}
	return &EvalError{URL: url, Err: ErrScript, Detail: oneLine(err.Error())}
}

// FindProxy returns the PAC's decision for t, from the cache when a
// decision for the same scheme, host, port and client is fresh. A failed
// evaluation is cached as well, so a broken or endless script costs one
// evaluation per TTL, not one per request. The error is an *EvalError, or
// ctx's error when no runtime became free in time.
//
// The cache key leaves out a plain request's path and query: a PAC that
// decides on the path gets the decision of the first URL seen for the host
// for CacheTTL.
func (e *Engine) FindProxy(ctx context.Context, t Target) (Decision, error) {
	host := strings.ToLower(t.Host)
	port := t.Port
	if port == 0 {
		port = schemePort(t.Scheme)
	}
	key := cacheKey{scheme: t.Scheme, host: host, port: port, client: t.Client}
	if e.opts.CacheTTL > 0 {
		if d, err, ok := e.cache.get(key, e.mono()); ok {
			d.Cached = true
			return d, err
		}
	}
	d, err := e.evaluate(ctx, t, host, port)
	if e.opts.CacheTTL > 0 && ctx.Err() == nil {
		e.cache.put(key, d, err, e.mono(), int64(e.opts.CacheTTL))
	}
	return d, err
}

// Evaluate runs the PAC for t without the cache (pac test uses it).
func (e *Engine) Evaluate(ctx context.Context, t Target) (Decision, error) {
	port := t.Port
	if port == 0 {
		port = schemePort(t.Scheme)
	}
	return e.evaluate(ctx, t, strings.ToLower(t.Host), port)
}

func (e *Engine) mono() int64 { return int64(time.Since(e.epoch)) }

func schemePort(scheme string) uint16 {
	if scheme == "https" {
		return 443
	}
	return 80
}

// URLFor is the URL Windows passes for t: a plain request's own URL, or
// scheme://host[:port]/ for a CONNECT.
func URLFor(t Target) string {
	if t.URL != nil {
		return t.URL.String()
	}
	host := strings.ToLower(t.Host)
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if t.Port != 0 && t.Port != schemePort(t.Scheme) {
		host += ":" + strconv.Itoa(int(t.Port))
	}
	return t.Scheme + "://" + host + "/"
}

func (e *Engine) evaluate(ctx context.Context, t Target, host string, port uint16) (Decision, error) {
	u := URLFor(Target{Scheme: t.Scheme, Host: host, Port: port, URL: t.URL})
	d := Decision{URL: u, Host: host}
	start := time.Now()
	rt, err := e.pool.get(ctx, e)
	if err != nil {
		return d, err
	}
	d.Func = rt.fn
	var res goja.Value
	err = rt.guard(ctx, func() error {
		rt.st.client = t.Client
		var err error
		res, err = rt.find(goja.Undefined(), rt.vm.ToValue(u), rt.vm.ToValue(host))
		return err
	})
	d.Elapsed = time.Since(start)
	d.Lookups, d.FailedLookups = rt.st.lookups, rt.st.failedLookups
	rt.st = evalState{}
	if err != nil {
		// An interrupted runtime may be left mid-way through the
		// script's own state; a fresh one replaces it.
		e.pool.discard()
		return d, rt.classify(u, err)
	}
	e.pool.put(rt)
	if res == nil || goja.IsUndefined(res) || goja.IsNull(res) {
		return d, &EvalError{URL: u, Err: ErrResult, Detail: "returned " + fmt.Sprint(res)}
	}
	if _, ok := res.Export().(string); !ok {
		return d, &EvalError{URL: u, Err: ErrResult, Detail: "returned a " + res.ExportType().String()}
	}
	d.Answer = res.String()
	d.Hops, d.AnswerErr = ParseAnswer(d.Answer)
	return d, nil
}

// pool holds idle runtimes and the right to create one more, so that at
// most n evaluations run at once and runtimes are built on demand.
type pool struct {
	idle  chan *jsrt
	slots chan struct{}
}

func (p *pool) init(n int) {
	p.idle = make(chan *jsrt, n)
	p.slots = make(chan struct{}, n)
	for range n {
		p.slots <- struct{}{}
	}
}

func (p *pool) get(ctx context.Context, e *Engine) (*jsrt, error) {
	select {
	case rt := <-p.idle:
		return rt, nil
	default:
	}
	select {
	case rt := <-p.idle:
		return rt, nil
	case <-p.slots:
		rt, err := e.newRuntime(ctx)
		if err != nil {
			p.slots <- struct{}{}
			return nil, err
		}
		return rt, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// put returns a runtime taken by get to the idle runtimes.
func (p *pool) put(rt *jsrt) {
	rt.vm.ClearInterrupt()
	select {
	case p.idle <- rt:
	default:
	}
}

// discard gives back the slot of a runtime that will not be reused.
func (p *pool) discard() {
	select {
	case p.slots <- struct{}{}:
	default:
	}
}

type cacheKey struct {
	scheme string
	host   string
	port   uint16
	client netip.Addr
}

type cacheEntry struct {
	d       Decision
	err     error
	expires int64
}

// cache is a map under a read-write lock: hits take the read lock only and
// allocate nothing.
type cache struct {
	mu   sync.RWMutex
	m    map[cacheKey]*cacheEntry
	size int
}

func (c *cache) init(size int) {
	c.m = make(map[cacheKey]*cacheEntry)
	c.size = size
}

func (c *cache) get(k cacheKey, now int64) (Decision, error, bool) {
	c.mu.RLock()
	ent := c.m[k]
	c.mu.RUnlock()
	if ent == nil || now >= ent.expires {
		return Decision{}, nil, false
	}
	return ent.d, ent.err, true
}

func (c *cache) put(k cacheKey, d Decision, err error, now, ttl int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	expires := now + ttl
	if len(c.m) >= c.size {
		for key, ent := range c.m {
			if ent.expires <= now {
				delete(c.m, key)
			}
		}
		if len(c.m) >= c.size {
			clear(c.m)
		}
	}
	c.m[k] = &cacheEntry{d: d, err: err, expires: expires}
}
