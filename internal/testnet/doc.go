// Package testnet provides loopback network fixtures for m365tap's
// end-to-end tests: a DNS server whose answers are set per name, a test CA
// and TLS origins with chosen protocol versions, TCP servers that refuse,
// hang, reset, echo, sink or source bytes or run a handler of the test's,
// and a real HTTP parent proxy that forwards, demands credentials, denies or
// stalls. Lines collects what a logger writes, for the test to read back.
//
// Every fixture is a real server on 127.0.0.1 with an ephemeral port, so a
// test exercises the same system calls and error values a deployment meets,
// never the internet and never a mock. Each constructor takes a testing.TB,
// registers its shutdown with Cleanup, and that shutdown closes every
// connection the fixture holds and waits for every goroutine it started, so
// a finished test leaves nothing running behind it.
package testnet
