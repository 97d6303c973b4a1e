// Package report turns the tap's event stream into the session's
// diagnosis: per matched rule, how many exchanges ended ok and how many
// ended with each other outcome, the last failure and its cause; then a
// verdict naming the article causes that apply, most important first, with
// their remedies; and the facts a person reading the log would miss (no
// NCSI probe passed through the tap, required endpoints failed only through
// the parent, every required endpoint failed).
//
// The same Aggregate is fed two ways: by a Collector, a zapcore.Core teed
// onto the running tap's event logger, which picks the few keys it needs
// from each event as the event marshals itself (no JSON is parsed); and by
// Read, which decodes JSON-lines logs, plain or gzip-compressed, after the
// fact. It knows the event schema (docs/events.md) and the rules package's
// causes, and nothing of the proxy.
package report
