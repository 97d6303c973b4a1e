package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/m365tap/m365tap/config"
)

const testSecret = "s3cret-pw"

// runConfigCmd runs `config ARGS...` with load and returns stdout and the error.
func runConfigCmd(t *testing.T, load func() (*config.Config, error), args ...string) (string, error) {
	t.Helper()
	cmd := NewConfigCommand(load)
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	err := cmd.Execute()
	return out.String(), err
}

func loadFile(file string) func() (*config.Config, error) {
	return func() (*config.Config, error) {
		return config.Load(config.LoadOptions{File: file, Env: []string{}})
	}
}

func TestConfigPrintMasksSecrets(t *testing.T) {
	out, err := runConfigCmd(t, loadFile("../config/testdata/good.yaml"), "print")
	if err != nil {
		t.Fatalf("config print: %v", err)
	}
	if strings.Contains(out, testSecret) {
		t.Errorf("config print shows the password:\n%s", out)
	}
	for _, want := range []string{
		"# file: ../config/testdata/good.yaml\n",
		"  url: http://ops:xxxxx@proxy.example.com:8080\n",
		"listen: 0.0.0.0:3128\n",
		"  response_header: 20s\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("config print lacks %q:\n%s", want, out)
		}
	}
}

func TestConfigPrintDefaults(t *testing.T) {
	load := func() (*config.Config, error) {
		return config.Load(config.LoadOptions{Env: []string{}, Dir: t.TempDir()})
	}
	out, err := runConfigCmd(t, load, "print")
	if err != nil {
		t.Fatalf("config print: %v", err)
	}
	if !strings.HasPrefix(out, "# file: none (defaults, environment and flags only)\nlisten: 127.0.0.1:8080\n") {
		t.Errorf("config print with no file:\n%s", out)
	}
}

func TestConfigPrintLoadError(t *testing.T) {
	want := errors.New("config: listen = \"x\": bad")
	_, err := runConfigCmd(t, func() (*config.Config, error) { return nil, want }, "print")
	if !errors.Is(err, want) {
		t.Errorf("err = %v, want %v", err, want)
	}
}

func TestConfigCheck(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		wantOut string
		wantErr string
	}{
		{
			name:    "good",
			file:    "../config/testdata/good.yaml",
			wantOut: "../config/testdata/good.yaml: ok\n",
		},
		{
			name:    "example",
			file:    "../m365tap.example.yaml",
			wantOut: "../m365tap.example.yaml: ok\n",
		},
		{
			name: "one problem, password masked",
			file: "../config/testdata/bad/parent_https.yaml",
			wantOut: `config: parent.url = "https://ops:xxxxx@proxy.example.com:443": https parents are not supported yet; want http://[user:pass@]host:port` +
				"\n",
			wantErr: "../config/testdata/bad/parent_https.yaml: 1 problem",
		},
		{
			name: "several problems",
			file: "../config/testdata/bad/several.yaml",
			wantOut: `config: listen = "0.0.0.0:8080": a listen address beyond loopback needs access.allow (client CIDRs); without it the tap would be an open relay` + "\n" +
				`config: log.level = "verbose": want debug, info, warn or error` + "\n",
			wantErr: "../config/testdata/bad/several.yaml: 2 problems",
		},
		{
			name:    "missing file",
			file:    "../config/testdata/missing.yaml",
			wantOut: "config: open ../config/testdata/missing.yaml: no such file or directory\n",
			wantErr: "../config/testdata/missing.yaml: 1 problem",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runConfigCmd(t, nil, "check", tc.file)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if out != tc.wantOut || gotErr != tc.wantErr {
				t.Errorf("config check %s\n got out %q err %q\nwant out %q err %q", tc.file, out, gotErr, tc.wantOut, tc.wantErr)
			}
			if strings.Contains(out+gotErr, testSecret) {
				t.Errorf("config check shows the password")
			}
		})
	}
}

// TestConfigCheckIgnoresEnvironment: the verdict is about the file, not the
// shell it was checked from.
func TestConfigCheckIgnoresEnvironment(t *testing.T) {
	t.Setenv("M365TAP_LOG_LEVEL", "verbose")
	t.Setenv("M365TAP_LISTEN", "0.0.0.0:8080")
	out, err := runConfigCmd(t, nil, "check", "../m365tap.example.yaml")
	if err != nil || out != "../m365tap.example.yaml: ok\n" {
		t.Errorf("config check with a bad environment: out %q, err %v", out, err)
	}
}

func TestConfigCheckNeedsOneFile(t *testing.T) {
	for _, args := range [][]string{{"check"}, {"check", "a.yaml", "b.yaml"}} {
		if _, err := runConfigCmd(t, nil, args...); err == nil {
			t.Errorf("config %v: no error", args)
		}
	}
}
