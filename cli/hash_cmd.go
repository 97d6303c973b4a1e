package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/m365tap/m365tap/internal/passhash"
)

// NewHashCommand returns `hash NAME`, which makes an access.users entry
// with an Argon2id hash of the password read from standard input.
func NewHashCommand() *cobra.Command {
	var (
		memory, passes uint32
		lanes          uint8
	)
	cmd := &cobra.Command{
		Use:   "hash NAME",
		Short: "Make an access.users entry: NAME and an Argon2id hash of a password read from standard input",
		Long: "Read a password from standard input (up to the first line break) and print NAME:HASH for\n" +
			"access.users, HASH an Argon2id PHC string with a random 16-byte salt. The defaults\n" +
			"(--memory 65536 KiB, --time 3, --threads 4) are RFC 9106's second recommendation. So that\n" +
			"the password stays out of the shell history, give it on standard input:\n" +
			"  m365tap hash engineer < password.txt",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if name == "" || strings.ContainsAny(name, ":\r\n") {
				return fmt.Errorf("user name %q: want a name without ':' or line breaks", name)
			}
			in, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4096))
			if err != nil {
				return err
			}
			pass, _, _ := bytes.Cut(in, []byte("\n"))
			pass = bytes.TrimSuffix(pass, []byte("\r"))
			if len(pass) == 0 {
				return errors.New("no password on standard input")
			}
			h, err := passhash.NewArgon2id(pass, memory, passes, lanes)
			if err != nil {
				return fmt.Errorf("want --memory %d..%d KiB (at least 8 per thread), --time 1..%d, --threads 1..%d: %w",
					8, passhash.MaxArgon2Memory, passhash.MaxArgon2Time, passhash.MaxArgon2Threads, err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s:%s\n", name, h)
			return err
		},
	}
	cmd.Flags().Uint32Var(&memory, "memory", 65536, "Argon2 memory in KiB (m)")
	cmd.Flags().Uint32Var(&passes, "time", 3, "Argon2 passes (t)")
	cmd.Flags().Uint8Var(&lanes, "threads", 4, "Argon2 lanes (p)")
	return cmd
}
