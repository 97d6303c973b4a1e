package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/internal/passhash"
)

// TestHashCommand: the entry `m365tap hash` prints verifies the password it
// read, and passes config validation as an access.users entry.
func TestHashCommand(t *testing.T) {
	cases := []struct {
		name, stdin string
		args        []string
		wantErr     string
	}{
		{"line", "s3cret pass\n", []string{"engineer", "--memory", "64", "--time", "1", "--threads", "1"}, ""},
		{"crlf, no flags", "s3cret pass\r\nignored\n", []string{"engineer"}, ""},
		{"no line end", "s3cret pass", []string{"engineer", "--memory", "256", "--threads", "2"}, ""},
		{"empty", "\n", []string{"engineer"}, "no password on standard input"},
		{"colon in name", "x\n", []string{"a:b"}, `user name "a:b"`},
		{"over the cap", "x\n", []string{"engineer", "--memory", "2097152"}, "want --memory 8..1048576 KiB"},
	}
	for _, tc := range cases {
		cmd := NewHashCommand()
		var out bytes.Buffer
		cmd.SetIn(strings.NewReader(tc.stdin))
		cmd.SetOut(&out)
		cmd.SetErr(&bytes.Buffer{})
		cmd.SetArgs(tc.args)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.Execute()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		entry := strings.TrimSuffix(out.String(), "\n")
		name, hash, _ := strings.Cut(entry, ":")
		h, err := passhash.Parse(hash)
		if name != "engineer" || err != nil || !h.Verify([]byte("s3cret pass")) || h.Verify([]byte("s3cret pass\n")) {
			t.Errorf("%s: entry %q (%v) does not verify the password", tc.name, entry, err)
		}
		cfg := config.Default()
		cfg.Access.Users = []string{entry}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: entry does not validate: %v", tc.name, err)
		}
	}
}
