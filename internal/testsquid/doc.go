// Package testsquid starts real authenticating parent proxies for
// m365tap's tests: Debian's Squid on loopback with no authentication,
// Basic (basic_ncsa_auth over an htpasswd file), NTLM (a helper of this
// package's own, ntlmhelper, that really verifies NTLMv2 responses),
// Digest (digest_file_auth), Negotiate with Kerberos (Squid's
// negotiate_kerberos_auth against a real MIT KDC in a realm the test
// creates) or Negotiate, NTLM and Basic offered together, Negotiate first
// and able to carry NTLM tokens (negotiate_wrapper_auth). Go clients that
// answer NTLM and Negotiate-carrying-NTLM on one connection (Conn) and a
// curl runner (Curl) drive them.
//
// The point is to compare a client straight to Squid with the same client
// through the tap: Squid's access log, read back with Entries, says which
// user Squid believed sent each request, so a test can check that the tap
// neither lost a client's identity nor lent it to another client.
//
// Each fixture takes a testing.TB and stops with its Cleanup. Squid and a
// KDC take a few hundred milliseconds to start, so a package shares one
// per configuration between its tests (start it in a parent test and run
// the cases as subtests). A missing tool skips the test, or fails it when
// CI is set: .ci/run installs squid, krb5-kdc, krb5-user and apache2-utils.
package testsquid
