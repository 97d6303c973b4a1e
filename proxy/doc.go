// Package proxy is m365tap's forwarding core: a goproxy server wrapped by an
// outer handler that owns one exchange record per request or tunnel, one
// dialer that resolves, routes (direct or through the parent proxy) and times
// each phase for both plain HTTP and CONNECT, passive TLS observation of
// tunnels, and the classification of raw errors into rules.Outcome. Every
// exchange is logged exactly once, at its end, as the message "exchange".
//
// goproxy's defaults are replaced on purpose: its transport skipped
// certificate verification and took routes from HTTPS_PROXY, its CONNECT
// dial errors reached clients as raw text, and its tunnels had no end hook.
package proxy
