// Package logs builds the event stream: zap cores writing newline-delimited
// JSON to standard output and to a rotating file, with sampling off (every
// exchange event carries the same message, and zap's sampler keys on the
// message, so sampling would silently drop all but a few events per second)
// and buffers that are flushed on Close. It ships bytes, not meanings: the
// proxy marshals its own events.
package logs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/natefinch/lumberjack.v2"
)

// Options selects the outputs. The zero value writes nothing.
type Options struct {
	// Level is the minimum level: debug, info, warn or error ("" = info).
	Level string
	// Stdout writes events to Stdout (os.Stdout when nil).
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
}

// Logs owns the event logger and everything that must be flushed on exit.
type Logs struct {
	// Events is the structured event stream.
	Events *zap.Logger
	// Debug carries library chatter (goproxy, net/http) to stderr at debug
	// level only, so it never mixes into the event stream.
	Debug   *zap.Logger
	closers []func() error
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

// New opens the outputs.
func New(o Options) (*Logs, error) {
	lvl, err := ParseLevel(o.Level)
	if err != nil {
		return nil, err
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 500 * time.Millisecond
	}
	l := &Logs{}
	var sinks []zapcore.WriteSyncer
	if o.Stdout {
		w := o.StdoutW
		if w == nil {
			w = os.Stdout
		}
		sinks = append(sinks, l.buffered(ignoreSyncEINVAL{zapcore.AddSync(w)}, o.FlushInterval))
	}
	if o.File != "" {
		rot := &lumberjack.Logger{
			Filename:   o.File,
			MaxSize:    o.MaxSizeMB,
			MaxBackups: o.MaxBackups,
			MaxAge:     o.MaxAgeDays,
			Compress:   o.Compress,
		}
		// Open now so a bad path fails at start, not at the first event.
		if _, err := rot.Write(nil); err != nil {
			return nil, fmt.Errorf("logs: open %s: %w", o.File, err)
		}
		sinks = append(sinks, l.buffered(zapcore.AddSync(rot), o.FlushInterval))
		l.closers = append(l.closers, rot.Close)
	}
	enc := zapcore.NewJSONEncoder(EncoderConfig())
	core := zapcore.NewNopCore()
	if len(sinks) > 0 {
		core = zapcore.NewCore(enc, zapcore.NewMultiWriteSyncer(sinks...), lvl)
	}
	l.Events = zap.New(core)
	l.Debug = zap.NewNop()
	if lvl == zapcore.DebugLevel {
		l.Debug = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(EncoderConfig()), zapcore.Lock(os.Stderr), lvl))
	}
	return l, nil
}

func (l *Logs) buffered(ws zapcore.WriteSyncer, every time.Duration) zapcore.WriteSyncer {
	b := &zapcore.BufferedWriteSyncer{WS: ws, Size: 256 << 10, FlushInterval: every}
	// Stop flushes and ends the flush goroutine; Sync alone would leave it.
	l.closers = append([]func() error{b.Stop}, l.closers...)
	return b
}

// Close flushes every buffer and closes the files. Call it once, on exit.
func (l *Logs) Close() error {
	var errs []error
	for _, c := range l.closers {
		if err := c(); err != nil {
			errs = append(errs, err)
		}
	}
	l.closers = nil
	return errors.Join(errs...)
}

// ignoreSyncEINVAL: fsync on a terminal or pipe fails with EINVAL, which
// says nothing about lost events (uber-go/zap#328).
type ignoreSyncEINVAL struct{ zapcore.WriteSyncer }

func (w ignoreSyncEINVAL) Sync() error {
	if err := w.WriteSyncer.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return err
	}
	return nil
}
