// Package logs builds the event stream: zap cores writing the events in the
// tap's own JSON, in Elastic Common Schema (ecs) or in ArcSight CEF (cef),
// to standard output, to rotating files and to syslog receivers (RFC 5424
// over UDP, TCP, TLS or RELP), each output with its own format and level.
//
// Sampling is off (every exchange event carries the same message, and
// zap's sampler keys on the message, so sampling would silently drop all
// but a few events per second). Local outputs are buffered and flushed on
// Close. A syslog output never blocks the logging call: it queues, ships
// from a goroutine of its own, and reports what it had to drop (see
// ship.go). The package ships bytes, not meanings: the proxy marshals its
// own events, and the ECS and CEF encoders translate their flat keys
// through one table (mapping.go).
package logs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/m365tap/m365tap/config"
)

// Options selects the outputs. The zero value writes nothing.
type Options struct {
	// Level is the minimum level: debug, info, warn or error ("" = info).
	Level string
	// Format of Stdout and File, and of sinks without one: json (""), ecs
	// or cef.
	Format string
	// Stdout writes events to StdoutW (os.Stdout when nil).
	Stdout  bool
	StdoutW io.Writer
	// File, when not empty, is a rotating log file.
	File       string
	MaxSizeMB  int
	MaxBackups int
	MaxAgeDays int
	Compress   bool
	// FlushInterval bounds how long an event may sit in a buffer ([500ms]):
	// short enough for someone tailing the log during a repro.
	FlushInterval time.Duration
	// Sinks are further outputs (config.Sink documents their keys). File
	// sinks rotate with MaxSizeMB, MaxBackups, MaxAgeDays and Compress.
	Sinks []config.Sink
	// DrainTimeout bounds how long Close waits for syslog sinks to send
	// what they hold ([5s]).
	DrainTimeout time.Duration
	// Meta names the tap in ECS and CEF records and in syslog headers; an
	// empty Hostname is filled from os.Hostname.
	Meta Meta
	// Stderr receives the syslog sinks' connection errors and loss
	// reports (os.Stderr when nil).
	Stderr io.Writer

	// tune adjusts each syslog sink's timings; tests shorten them.
	tune func(*shipConfig)
}

// ConfigOptions maps the log section of the configuration onto Options.
func ConfigOptions(c config.Log) Options {
	return Options{
		Level:        c.Level,
		Format:       c.Format,
		Stdout:       c.Stdout,
		File:         c.File,
		MaxSizeMB:    c.MaxSizeMB,
		MaxBackups:   c.MaxBackups,
		MaxAgeDays:   c.MaxAgeDays,
		Compress:     c.Compress,
		Sinks:        c.Sinks,
		DrainTimeout: c.DrainTimeout,
	}
}

// Logs owns the event logger and everything that must be flushed on exit.
type Logs struct {
	// Events is the structured event stream.
	Events *zap.Logger
	// Debug carries library chatter (goproxy, net/http) to stderr at debug
	// level only, so it never mixes into the event stream.
	Debug    *zap.Logger
	closers  []func() error
	shippers []*shipper
	drain    time.Duration
}

// EncoderConfig is the JSON layout of every record: ts, level, msg, then the
// event's own flat fields.
func EncoderConfig() zapcore.EncoderConfig {
	return zapcore.EncoderConfig{
		TimeKey:        "ts",
		LevelKey:       "level",
		MessageKey:     "msg",
		LineEnding:     "\n",
		EncodeLevel:    zapcore.LowercaseLevelEncoder,
		EncodeTime:     utcRFC3339Nano,
		EncodeDuration: zapcore.NanosDurationEncoder,
	}
}

func utcRFC3339Nano(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
	var buf [40]byte
	enc.AppendByteString(t.UTC().AppendFormat(buf[:0], "2006-01-02T15:04:05.000000Z07:00"))
}

// ParseLevel accepts debug, info, warn and error.
func ParseLevel(s string) (zapcore.Level, error) {
	switch s {
	case "", "info":
		return zapcore.InfoLevel, nil
	case "debug":
		return zapcore.DebugLevel, nil
	case "warn":
		return zapcore.WarnLevel, nil
	case "error":
		return zapcore.ErrorLevel, nil
	}
	return 0, fmt.Errorf("logs: level %q: want debug, info, warn or error", s)
}

// New opens the outputs and starts a sender for each syslog sink. A file
// that cannot be opened, a format or level that does not exist and a TLS
// file that cannot be read are errors; a syslog receiver that cannot be
// reached is not (the sink queues, retries and reports).
func New(o Options) (*Logs, error) {
	lvl, err := ParseLevel(o.Level)
	if err != nil {
		return nil, err
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 500 * time.Millisecond
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 5 * time.Second
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Meta.Hostname == "" {
		o.Meta.Hostname, _ = os.Hostname()
	}
	l := &Logs{drain: o.DrainTimeout}
	b := builder{l: l, o: &o}
	// log.stdout and log.file share one core, as before sinks existed:
	// the record is encoded once and written to both.
	var cores []zapcore.Core
	var legacy []zapcore.WriteSyncer
	if o.Stdout {
		legacy = append(legacy, b.buffered(b.stdout()))
	}
	if o.File != "" {
		ws, err := b.file(o.File)
		if err != nil {
			l.abort()
			return nil, err
		}
		legacy = append(legacy, b.buffered(ws))
	}
	if len(legacy) > 0 {
		enc, err := NewEncoder(o.Format, o.Meta)
		if err != nil {
			l.abort()
			return nil, err
		}
		cores = append(cores, zapcore.NewCore(enc, zapcore.NewMultiWriteSyncer(legacy...), lvl))
	}
	locals := len(cores)
	for i, sk := range o.Sinks {
		c, err := b.sink(sk, lvl)
		if err != nil {
			l.abort()
			return nil, fmt.Errorf("logs: log.sinks[%d]: %w", i, err)
		}
		if _, ok := c.(*shipCore); ok {
			cores = append(cores, c)
		} else {
			// Local sinks first, so that the shippers' loss reports go to
			// every one of them.
			cores = append(cores[:locals], append([]zapcore.Core{c}, cores[locals:]...)...)
			locals++
		}
	}
	core := zapcore.NewNopCore()
	if len(cores) > 0 {
		core = zapcore.NewTee(cores...)
	}
	l.Events = zap.New(core)
	local := zap.New(zapcore.NewTee(cores[:locals]...))
	for _, s := range l.shippers {
		s.locals = local
		go s.run()
	}
	l.Debug = zap.NewNop()
	if lvl == zapcore.DebugLevel {
		l.Debug = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(EncoderConfig()), zapcore.Lock(os.Stderr), lvl))
	}
	return l, nil
}

// builder opens outputs for New, remembering what Close must flush.
type builder struct {
	l      *Logs
	o      *Options
	stdws  zapcore.WriteSyncer
	stdone sync.Once
}

// stdout is one writer shared by every core that writes to standard
// output, so that two of them never interleave inside a line.
func (b *builder) stdout() zapcore.WriteSyncer {
	b.stdone.Do(func() {
		w := b.o.StdoutW
		if w == nil {
			w = os.Stdout
		}
		b.stdws = zapcore.Lock(newStdoutSink(w, b.o.Stderr))
	})
	return b.stdws
}

func (b *builder) file(path string) (zapcore.WriteSyncer, error) {
	rot := &lumberjack.Logger{
		Filename:   path,
		MaxSize:    b.o.MaxSizeMB,
		MaxBackups: b.o.MaxBackups,
		MaxAge:     b.o.MaxAgeDays,
		Compress:   b.o.Compress,
	}
	// Open now so a bad path fails at start, not at the first event.
	if _, err := rot.Write(nil); err != nil {
		return nil, fmt.Errorf("logs: open %s: %w", path, err)
	}
	b.l.closers = append(b.l.closers, rot.Close)
	return zapcore.AddSync(rot), nil
}

func (b *builder) buffered(ws zapcore.WriteSyncer) zapcore.WriteSyncer {
	return b.l.buffered(ws, b.o.FlushInterval)
}

// local is a buffered core writing ws in a format.
func (b *builder) local(ws zapcore.WriteSyncer, format string, lvl zapcore.Level) (zapcore.Core, error) {
	enc, err := NewEncoder(format, b.o.Meta)
	if err != nil {
		return nil, err
	}
	return zapcore.NewCore(enc, b.buffered(ws), lvl), nil
}

func (b *builder) sink(sk config.Sink, def zapcore.Level) (zapcore.Core, error) {
	lvl := def
	if sk.Level != "" {
		var err error
		if lvl, err = ParseLevel(sk.Level); err != nil {
			return nil, err
		}
	}
	format := sk.Format
	if format == "" {
		format = b.o.Format
	}
	switch sk.Type {
	case "stdout":
		return b.local(b.stdout(), format, lvl)
	case "file":
		ws, err := b.file(sk.Path)
		if err != nil {
			return nil, err
		}
		return b.local(ws, format, lvl)
	case "syslog":
		return b.syslog(sk, format, lvl)
	}
	return nil, fmt.Errorf("type %q: want stdout, file or syslog", sk.Type)
}

func (b *builder) syslog(sk config.Sink, format string, lvl zapcore.Level) (zapcore.Core, error) {
	enc, err := NewEncoder(format, b.o.Meta)
	if err != nil {
		return nil, err
	}
	cfg := shipConfig{
		name:    "syslog " + sk.Network + " " + sk.Address,
		network: sk.Network,
		address: sk.Address,
		queue:   sk.QueueSize,
		stderr:  b.o.Stderr,
	}
	if b.o.tune != nil {
		b.o.tune(&cfg)
	}
	switch sk.Network {
	case "udp", "tcp", "relp":
	case "tls":
		if cfg.tls, err = sinkTLS(sk); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("network %q: want udp, tcp, tls or relp", sk.Network)
	}
	facility := 16 // local0
	if sk.Facility != "" {
		f, ok := config.SyslogFacilities[sk.Facility]
		if !ok {
			return nil, fmt.Errorf("facility %q unknown", sk.Facility)
		}
		facility = f
	}
	app := sk.AppName
	if app == "" {
		app = "m365tap"
	}
	if sk.DiskQueue != "" {
		if sk.Network == "udp" {
			return nil, fmt.Errorf("disk_queue %s: over udp nothing tells what arrived", sk.DiskQueue)
		}
		mb := sk.DiskQueueMaxMB
		if mb <= 0 {
			mb = config.DefaultDiskQueueMaxMB
		}
		stderr, name := b.o.Stderr, cfg.name
		report := func(format string, args ...any) {
			fmt.Fprintf(stderr, "m365tap: log sink %s: %s\n", name, fmt.Sprintf(format, args...))
		}
		if cfg.disk, err = openDiskQueue(sk.DiskQueue, int64(mb)<<20, report); err != nil {
			return nil, fmt.Errorf("disk_queue: %w", err)
		}
	}
	s := newShipper(cfg, newSyslogHeader(facility, b.o.Meta.Hostname, app, os.Getpid()), enc.Clone())
	b.l.shippers = append(b.l.shippers, s)
	return &shipCore{LevelEnabler: lvl, enc: enc, s: s}, nil
}

// sinkTLS is the client side of RFC 5425: TLS 1.2 or later, the receiver
// verified against ca_file (or the system's roots) under server_name (or
// the address's host), and a client certificate when one is configured.
func sinkTLS(sk config.Sink) (*tls.Config, error) {
	host, _, err := net.SplitHostPort(sk.Address)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", sk.Address, err)
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if sk.ServerName != "" {
		c.ServerName = sk.ServerName
	}
	if sk.CAFile != "" {
		pem, err := os.ReadFile(sk.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", sk.CAFile)
		}
		c.RootCAs = pool
	}
	if sk.CertFile != "" || sk.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(sk.CertFile, sk.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file/key_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

func (l *Logs) buffered(ws zapcore.WriteSyncer, every time.Duration) zapcore.WriteSyncer {
	b := &zapcore.BufferedWriteSyncer{WS: ws, Size: 256 << 10, FlushInterval: every}
	// Stop flushes and ends the flush goroutine; Sync alone would leave it.
	l.closers = append([]func() error{b.Stop}, l.closers...)
	return b
}

// abort undoes a New that failed half-way.
func (l *Logs) abort() {
	for _, c := range l.closers {
		_ = c()
	}
	for _, s := range l.shippers {
		if s.dq != nil {
			s.dq.close()
		}
	}
	l.closers, l.shippers = nil, nil
}

// Close drains the syslog sinks within the drain timeout (reporting on
// stderr and to the local sinks what they could not send), then flushes
// every buffer and closes the files. Call it once, on exit.
func (l *Logs) Close() error {
	deadline := time.Now().Add(l.drain)
	var wg sync.WaitGroup
	for _, s := range l.shippers {
		wg.Go(func() { s.close(deadline) })
	}
	wg.Wait()
	l.shippers = nil
	var errs []error
	for _, c := range l.closers {
		if err := c(); err != nil {
			errs = append(errs, err)
		}
	}
	l.closers = nil
	return errors.Join(errs...)
}
