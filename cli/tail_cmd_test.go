package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"
)

// docExamples are the example records of docs/events.md, one per line,
// as they stood when tail was written (testdata/events.log).
func docExamples(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "events.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func utcTail(t *testing.T) {
	saved := time.Local
	time.Local = time.UTC
	t.Cleanup(func() { time.Local = saved })
}

// TestTailLines: one line per record, and the filters, on the records of
// docs/events.md and a recorded session read from standard input.
func TestTailLines(t *testing.T) {
	utcTail(t)
	examples := docExamples(t)
	raw, err := os.ReadFile(filepath.Join("..", "report", "testdata", "blocking-parent.log"))
	if err != nil {
		t.Fatal(err)
	}
	session := string(raw)
	cases := []struct {
		name  string
		input string
		flags []string
		want  []string // lines, each a regexp matched in full
	}{
		{"every record", examples, nil, []string{
			`16:11:52\.134 ok 127\.0\.0\.1 GET http://127\.0\.0\.1:18081/\?code=REDACTED&x=1 direct 200 522\.093ms`,
			`16:11:55\.152 connect_refused 127\.0\.0\.1 CONNECT 127\.0\.0\.1:1 direct 502 0\.98ms "dial tcp 127\.0\.0\.1:1: connect: connection refused"`,
			`16:12:36\.379 connect_refused 127\.0\.0\.1 CONNECT login\.microsoftonline\.com:443 direct 502 0\.208ms rule=56 cause=required-endpoint-unreachable "dial tcp 127\.0\.0\.1:443: connect: connection refused"`,
			`16:12:36\.504 tls_failure 127\.0\.0\.1 CONNECT origin\.test:18443 direct 200 32\.858ms alert=unknown_ca "client sent TLS alert unknown_ca during the handshake"`,
			`16:55:29\.473 ok - PROBE web http://www\.msftconnecttest\.com/connecttest\.txt direct upstream 200 15\.714ms rule=ncsi-connecttest-v4`,
			`16:55:29\.466 connect_refused - PROBE tls login\.microsoftonline\.com:443 direct 4\.463ms rule=56 cause=required-endpoint-unreachable "dial tcp 127\.0\.0\.1:443: connect: connection refused"`,
			`16:11:42\.226 start listen=127\.0\.0\.1:18080 rules_version=2026052900`,
			`16:12:18\.335 stop listen=127\.0\.0\.1:18080`,
			`16:49:01\.083 report exchanges=3 failed=3`,
			`16:21:09\.120 rules_reloaded rules_version=sha256:e470243adca9`,
		}},
		{"failures", examples, []string{"--failures"}, []string{
			`16:11:55\.152 connect_refused .*`, `16:12:36\.379 connect_refused .*`, `16:12:36\.504 tls_failure .*`,
			`16:55:29\.466 connect_refused - PROBE tls .*`,
		}},
		// rule_ids counts: 59 matched login.microsoftonline.com too.
		{"rule", examples, []string{"--rule", "59"}, []string{`16:12:36\.379 connect_refused 127\.0\.0\.1 CONNECT login\.microsoftonline\.com:443 .*`,
			`16:55:29\.466 connect_refused - PROBE tls login\.microsoftonline\.com:443 .*`}},
		{"cause", session, []string{"--cause", "required-endpoint-unreachable"}, []string{
			`\d\d:\d\d:\d\d\.\d{3} http_error 127\.0\.0\.1 CONNECT login\.microsoftonline\.com:443 parent 403 [\d.]+ms rule=56 cause=required-endpoint-unreachable "parent proxy answered CONNECT with 403 Forbidden"`,
			`.* http_error 127\.0\.0\.1 CONNECT graph\.microsoft\.com:443 parent 403 .*`,
			`.* http_error 127\.0\.0\.1 CONNECT graph\.microsoft\.com:443 parent 403 .*`,
			`.* http_error 127\.0\.0\.1 GET http://crl\.microsoft\.com/pki/crl/products/MicRooCerAut2011_2011_03_22\.crl parent 403 [\d.]+ms rule=84 cause=required-endpoint-unreachable "upstream answered 403 Forbidden"`,
		}},
		{"host glob", session, []string{"--host", "*.microsoft.com"}, []string{`.* graph\.microsoft\.com:443 .*`, `.* graph\.microsoft\.com:443 .*`, `.* http://crl\.microsoft\.com/.*`}},
		{"host glob, upper case", session, []string{"--host", "WWW.MSFTCONNECTTEST.COM"}, []string{
			`.* ok 127\.0\.0\.1 GET http://www\.msftconnecttest\.com/connecttest\.txt direct 200 [\d.]+ms rule=ncsi-connecttest-v4`,
		}},
		{"the report record", session, []string{"--lines", "0"}, []string{`.* start .*`, `.* ok .*`, `.* http_error .*`, `.* http_error .*`,
			`.* http_error .*`, `.* http_error .*`, `.* http_error .*`, `.* report exchanges=6 failed=5`, `.* stop listen=127\.0\.0\.1:\d+`}},
		{"text that is not a record", "m365tap 0.1.0-dev listening on 127.0.0.1:8080\n" + examples[:strings.Index(examples, "\n")+1], nil,
			[]string{`m365tap 0\.1\.0-dev listening on 127\.0\.0\.1:8080`, `16:11:52\.134 ok .*`}},
		{"text that is not a record, filtered", "garbage\n", []string{"--failures"}, nil},
		// Japanese: the line's words come from the message catalogue.
		{"japanese", strings.Join(strings.Split(examples, "\n")[4:6], "\n") + "\n", []string{"--language", "ja"}, []string{
			`16:55:29\.473 ok - プローブ web http://www\.msftconnecttest\.com/connecttest\.txt direct 上位の応答 200 15\.714ms rule=ncsi-connecttest-v4`,
			`16:55:29\.466 connect_refused - プローブ tls login\.microsoftonline\.com:443 direct .*`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := newRoot()
			var out, errOut bytes.Buffer
			root.SetArgs(append([]string{"tail", "-"}, tc.flags...))
			root.SetOut(&out)
			root.SetErr(&errOut)
			root.SetIn(strings.NewReader(tc.input))
			if err := root.Execute(); err != nil {
				t.Fatal(err, errOut.String())
			}
			got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if out.Len() == 0 {
				got = nil
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d lines, want %d:\n%s", len(got), len(tc.want), out.String())
			}
			for i, re := range tc.want {
				if !regexp.MustCompile("^" + re + "$").MatchString(got[i]) {
					t.Errorf("line %d: %q does not match %s", i, got[i], re)
				}
			}
			if strings.Contains(out.String(), "\x1b[") {
				t.Errorf("coloured output to a buffer: %q", out.String())
			}
		})
	}
}

func TestTailColour(t *testing.T) {
	utcTail(t)
	var out bytes.Buffer
	tp := &tailPrinter{w: &out, color: true, loc: time.UTC}
	for _, l := range strings.Split(strings.TrimSpace(docExamples(t)), "\n")[:3] {
		tp.line([]byte(l))
	}
	lines := strings.Split(out.String(), "\n")
	if !strings.Contains(lines[0], ansiGreen+"ok"+ansiReset) || !strings.Contains(lines[1], ansiRed+"connect_refused"+ansiReset) ||
		!strings.Contains(lines[2], ansiYellow+"cause=required-endpoint-unreachable"+ansiReset) {
		t.Errorf("colours: %q", out.String())
	}
	if _, _, err := newRoot().Find([]string{"tail"}); err != nil {
		t.Fatal(err)
	}
}

func TestTailBadFlags(t *testing.T) {
	for _, args := range [][]string{{"tail", "-", "--host", "[a-"}, {"tail", "a", "b"}} {
		root := newRoot()
		root.SetArgs(args)
		root.SetOut(&bytes.Buffer{})
		root.SetErr(&bytes.Buffer{})
		if err := root.Execute(); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// collector gathers emitted lines for the follow tests.
type collector struct {
	mu    sync.Mutex
	lines []string
}

func (c *collector) emit(b []byte) error {
	c.mu.Lock()
	c.lines = append(c.lines, strings.TrimSuffix(string(b), "\n"))
	c.mu.Unlock()
	return nil
}

func (c *collector) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.lines)
}

func appendFile(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		fmt.Fprintln(f, l)
	}
	f.Close()
}

// TestTailFollowsRotation: tail -F semantics. The last lines first, then
// every new line exactly once, across rotation by lumberjack (rename and a
// new file), a plain rename, a truncation, and a file that appears late.
func TestTailFollowsRotation(t *testing.T) {
	saved := tailPoll
	tailPoll = 10 * time.Millisecond
	t.Cleanup(func() { tailPoll = saved })

	cases := []struct {
		name string
		// run writes to path while tail follows it; the lines tail should
		// have printed, in order, are returned.
		before []string
		run    func(t *testing.T, path string, wait func(n int)) []string
	}{
		{"lumberjack rotation", []string{"a1", "a2", "a3"}, func(t *testing.T, path string, wait func(int)) []string {
			lj := &lumberjack.Logger{Filename: path, MaxBackups: 3}
			t.Cleanup(func() { lj.Close() })
			lj.Write([]byte("b1\n"))
			wait(3)
			lj.Write([]byte("b2\n"))
			if err := lj.Rotate(); err != nil {
				t.Fatal(err)
			}
			lj.Write([]byte("c1\n"))
			wait(5)
			lj.Rotate()
			lj.Write([]byte("d1\nd2\n"))
			return []string{"a2", "a3", "b1", "b2", "c1", "d1", "d2"}
		}},
		{"rename, then a new file", []string{"a1"}, func(t *testing.T, path string, wait func(int)) []string {
			wait(1)
			appendFile(t, path, "b1")
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			// Written to the old file after the rename: still read.
			appendFile(t, path+".1", "b2")
			time.Sleep(5 * tailPoll)
			appendFile(t, path, "c1", "c2")
			return []string{"a1", "b1", "b2", "c1", "c2"}
		}},
		{"truncation", []string{"a1", "a2"}, func(t *testing.T, path string, wait func(int)) []string {
			wait(2)
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * tailPoll)
			appendFile(t, path, "b1")
			return []string{"a1", "a2", "b1"}
		}},
		{"a partial line waits for its end", []string{"a1"}, func(t *testing.T, path string, wait func(int)) []string {
			wait(1)
			f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString(`{"half":`)
			time.Sleep(5 * tailPoll)
			f.WriteString("true}\n")
			f.Close()
			return []string{"a1", `{"half":true}`}
		}},
		{"the file appears later", nil, func(t *testing.T, path string, wait func(int)) []string {
			time.Sleep(5 * tailPoll)
			appendFile(t, path, "a1", "a2", "a3")
			return []string{"a1", "a2", "a3"}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "m365tap-events.log")
			if tc.before != nil {
				appendFile(t, path, tc.before...)
			}
			var (
				c        collector
				ferr     error
				finished = make(chan struct{})
			)
			ctx, cancel := context.WithCancel(context.Background())
			go func() { ferr = followFile(ctx, path, 2, c.emit); close(finished) }()
			t.Cleanup(func() { cancel(); <-finished })
			wait := func(n int) {
				t.Helper()
				deadline := time.Now().Add(5 * time.Second)
				for len(c.get()) < n {
					if time.Now().After(deadline) {
						t.Fatalf("%d lines within 5s, want %d: %q", len(c.get()), n, c.get())
					}
					time.Sleep(tailPoll)
				}
			}
			// Tail has read what was there before anything new is written.
			wait(min(len(tc.before), 2))
			want := tc.run(t, path, wait)
			wait(len(want))
			time.Sleep(5 * tailPoll) // nothing more arrives
			cancel()
			<-finished
			if ferr != context.Canceled {
				t.Errorf("followFile: %v", ferr)
			}
			if got := c.get(); !slices.Equal(got, want) {
				t.Errorf("lines %q, want %q", got, want)
			}
		})
	}
}

// TestClientNamesShown: clients.names from the config names the PCs in
// tail's lines and in the report, where --client-name wins for an address
// named in both.
func TestClientNamesShown(t *testing.T) {
	utcTail(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "m365tap.yaml")
	if err := os.WriteFile(cfgFile, []byte("clients:\n  names: [127.0.0.11=PC-RECEPTION, 127.0.0.13=PC-SALES-07]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join("..", "report", "testdata", "multi-pc.log")

	var out, errOut bytes.Buffer
	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	root := newRoot()
	root.SetArgs([]string{"--config", cfgFile, "tail", "-"})
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetIn(bytes.NewReader(raw))
	if err := root.Execute(); err != nil {
		t.Fatal(err, errOut.String())
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(out.String(), "\n") {
		for _, want := range []string{" PC-RECEPTION (127.0.0.11) ", " PC-SALES-07 (127.0.0.13) ", " 127.0.0.12 "} {
			if strings.Contains(l, want) {
				seen[want] = true
			}
		}
		if strings.Contains(l, " 127.0.0.11 ") || strings.Contains(l, " 127.0.0.13 ") {
			t.Errorf("a named PC shown by its address alone: %s", l)
		}
	}
	if len(seen) != 3 {
		t.Errorf("tail lines show %v, want both names and the unnamed PC:\n%s", seen, out.String())
	}

	out.Reset()
	if code := Main([]string{"--config", cfgFile, "report", "--format", "json", "--client-name", "127.0.0.13=PC-FLAG", logFile}, &out, &errOut); code != 0 {
		t.Fatalf("report: %d %s", code, errOut.String())
	}
	var doc struct {
		Clients []struct {
			Address string `json:"address"`
			Name    string `json:"name"`
		} `json:"clients"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range doc.Clients {
		got[c.Address] = c.Name
	}
	want := map[string]string{"127.0.0.11": "PC-RECEPTION", "127.0.0.12": "", "127.0.0.13": "PC-FLAG"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("report names %v, want %v (clients.names, --client-name winning)", got, want)
	}
}
