// Package pac evaluates proxy auto-config (PAC) scripts the way a Windows
// PC would, so the tap can send each exchange out by the way the PC's own
// PAC would have chosen, and so an engineer can see what a PAC decides.
//
// A PAC is untrusted code fetched from the customer's network. The engine
// bounds it: a size cap (1 MiB, as WinHTTP), a time limit per evaluation,
// a deadline on every DNS call the script makes (an interrupt cannot stop
// a blocked native call), a bound on DNS lookups per evaluation, a maximum
// call depth, and a runtime holding nothing but ECMAScript's built-ins and
// the PAC helpers. goja runtimes are not goroutine-safe, so evaluations take
// a runtime from a pool. Decisions are cached per (scheme, host, port,
// client) for a short time so the request path does not run JavaScript per
// request.
//
// The package knows nothing of the proxy, the log or the configuration:
// callers pass a Resolver, a time zone and the client's address in, and get
// a Decision (the answer and its parsed hops) or a typed error out.
package pac
