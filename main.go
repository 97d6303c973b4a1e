// Command m365tap is a forward proxy with a diagnostic tap for Microsoft 365
// sign-in failures. See README.md.
package main

import (
	"os"

	"github.com/m365tap/m365tap/cli"
)

// main only exits with run's status, so deferred flushes inside run happen.
func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
