package report

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/m365tap/m365tap/rules"
)

// chromium finds Debian's Chromium; without it the browser tests skip,
// except in CI (CI set), where they fail.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed (apt-get install chromium)")
	}
	t.Skip("chromium is not installed (apt-get install chromium); with CI set this fails instead")
	return ""
}

// browser drives headless Chromium over the DevTools protocol on a pipe
// (--remote-debugging-pipe: JSON messages ending in NUL on file
// descriptors 3 and 4), so that the page's own requests and console
// messages are told apart from the browser's background traffic.
type browser struct {
	t       *testing.T
	cmd     *exec.Cmd
	w       *os.File
	mu      sync.Mutex
	next    int
	waiting map[int]chan cdpMessage
	events  chan cdpMessage
	session string
}

type cdpMessage struct {
	ID        int                       `json:"id,omitempty"`
	Method    string                    `json:"method,omitempty"`
	Params    json.RawMessage           `json:"params,omitempty"`
	Result    json.RawMessage           `json:"result,omitempty"`
	Error     *struct{ Message string } `json:"error,omitempty"`
	SessionID string                    `json:"sessionId,omitempty"`
}

func startBrowser(t *testing.T, bin string) *browser {
	t.Helper()
	toChrome, ourEnd, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fromChrome, chromeEnd, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync", "--user-data-dir="+t.TempDir(),
		"--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{toChrome, chromeEnd} // fds 3 and 4
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	toChrome.Close()
	chromeEnd.Close()
	b := &browser{t: t, cmd: cmd, w: ourEnd, waiting: map[int]chan cdpMessage{}, events: make(chan cdpMessage, 1024)}
	go func() {
		r := bufio.NewReaderSize(fromChrome, 1<<20)
		for {
			raw, err := r.ReadBytes(0)
			if err != nil {
				close(b.events)
				return
			}
			var m cdpMessage
			if json.Unmarshal(raw[:len(raw)-1], &m) != nil {
				continue
			}
			if m.ID != 0 {
				b.mu.Lock()
				ch := b.waiting[m.ID]
				delete(b.waiting, m.ID)
				b.mu.Unlock()
				if ch != nil {
					ch <- m
				}
				continue
			}
			b.events <- m
		}
	}()
	t.Cleanup(func() {
		b.call("", "Browser.close", nil, nil)
		ourEnd.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return b
}

// call sends one command (to the page's session unless session is "")
// and decodes its result into out.
func (b *browser) call(session, method string, params, out any) error {
	b.mu.Lock()
	b.next++
	id := b.next
	ch := make(chan cdpMessage, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	data, _ := json.Marshal(msg)
	if _, err := b.w.Write(append(data, 0)); err != nil {
		return err
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return fmt.Errorf("%s: %s", method, m.Error.Message)
		}
		if out != nil {
			return json.Unmarshal(m.Result, out)
		}
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s: no answer", method)
	}
}

func (b *browser) must(session, method string, params, out any) {
	b.t.Helper()
	if err := b.call(session, method, params, out); err != nil {
		b.t.Fatal(err)
	}
}

// visit is what one page did: its DOM after load, the URLs it requested
// beyond itself, what it wrote to the console or the log, a screenshot and
// a print to PDF.
type visit struct {
	dom        string
	requests   []string
	console    []string
	screenshot []byte
	pdf        []byte
}

func (b *browser) open(page string) visit {
	b.t.Helper()
	var target struct{ TargetID string }
	b.must("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var att struct{ SessionID string }
	b.must("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att)
	s := att.SessionID
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable", "Network.enable"} {
		b.must(s, m, nil, nil)
	}
	b.must(s, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": 1600, "deviceScaleFactor": 1, "mobile": false}, nil)
	url := "file://" + page
	b.must(s, "Page.navigate", map[string]any{"url": url}, nil)
	var v visit
	deadline := time.After(30 * time.Second)
	loaded := false
	for !loaded {
		select {
		case m, ok := <-b.events:
			if !ok {
				b.t.Fatal("chromium went away")
			}
			if m.SessionID != s {
				continue
			}
			v.note(m, url)
			loaded = m.Method == "Page.loadEventFired"
		case <-deadline:
			b.t.Fatal("the page did not load")
		}
	}
	// Late requests and messages (a timer, an image) get a moment.
	settle := time.After(500 * time.Millisecond)
	for done := false; !done; {
		select {
		case m := <-b.events:
			if m.SessionID == s {
				v.note(m, url)
			}
		case <-settle:
			done = true
		}
	}
	var ev struct{ Result struct{ Value string } }
	b.must(s, "Runtime.evaluate", map[string]any{"expression": "document.documentElement.outerHTML", "returnByValue": true}, &ev)
	v.dom = ev.Result.Value
	var shot, pdf struct{ Data string }
	b.must(s, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &shot)
	b.must(s, "Page.printToPDF", map[string]any{"printBackground": true, "preferCSSPageSize": true, "generateTaggedPDF": false}, &pdf)
	v.screenshot, _ = base64.StdEncoding.DecodeString(shot.Data)
	v.pdf, _ = base64.StdEncoding.DecodeString(pdf.Data)
	// Whatever arrived while capturing.
	for drained := false; !drained; {
		select {
		case m := <-b.events:
			if m.SessionID == s {
				v.note(m, url)
			}
		default:
			drained = true
		}
	}
	b.must("", "Target.closeTarget", map[string]any{"targetId": target.TargetID}, nil)
	return v
}

func (v *visit) note(m cdpMessage, self string) {
	switch m.Method {
	case "Network.requestWillBeSent":
		var p struct{ Request struct{ URL string } }
		json.Unmarshal(m.Params, &p)
		if p.Request.URL != self && !strings.HasPrefix(p.Request.URL, "data:") {
			v.requests = append(v.requests, p.Request.URL)
		}
	case "Runtime.consoleAPICalled", "Runtime.exceptionThrown", "Log.entryAdded":
		v.console = append(v.console, m.Method+" "+string(m.Params))
	}
}

// TestHTMLInBrowser opens the multi-PC report in headless Chromium in both
// languages: no console message, no network request, the verdict before
// the per-PC table in the DOM, a screenshot, and a print to PDF whose text
// pdftotext reads back. A page that does make a request and log an error
// proves the checks can fail.
func TestHTMLInBrowser(t *testing.T) {
	bin := chromium(t)
	pdftotext, err := exec.LookPath("pdftotext")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("pdftotext is not installed (apt-get install poppler-utils)")
		}
		t.Skip("pdftotext is not installed (apt-get install poppler-utils); with CI set this fails instead")
	}
	dir := t.TempDir()
	b := startBrowser(t, bin)

	bad := filepath.Join(dir, "bad.html")
	os.WriteFile(bad, []byte(`<!DOCTYPE html><html><body><img src="http://images.example.test/x.png"><script>console.error("broken")</script></body></html>`), 0o600)
	if v := b.open(bad); len(v.console) == 0 || len(v.requests) == 0 {
		t.Fatalf("the control page went unnoticed: console %q, requests %q", v.console, v.requests)
	}

	a := readFiles(t, filepath.Join("testdata", "multi-pc.log"))
	a.Rules, a.Names = embeddedSet(t), multiNames
	for _, tc := range []struct {
		lang rules.Language
		dom  []string
		pdf  []string
	}{
		{rules.LangEN, []string{`lang="en"`, `id="pc-table"`, `data-scope="single_pc"`, "fails only on PC-SALES-07 (127.0.0.13)", "<svg"},
			[]string{"Verdict", "PC-SALES-07", "graph.microsoft.com", "Causes and remedies from"}},
		{rules.LangJA, []string{`lang="ja"`, `id="pc-table"`, `data-scope="all_pcs"`, "この通信を試したすべての端末で失敗しています", "<svg"},
			[]string{"診断結果", "PC-SALES-07", "端末", "原因と対処方法の出典"}},
	} {
		t.Run(tc.lang.String(), func(t *testing.T) {
			page := filepath.Join(dir, "report-"+tc.lang.String()+".html")
			var buf bytes.Buffer
			if err := a.Summary(tc.lang).Write(&buf, FormatHTML); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(page, buf.Bytes(), 0o600)
			v := b.open(page)
			for _, want := range tc.dom {
				if !strings.Contains(v.dom, want) {
					t.Errorf("DOM lacks %q", want)
				}
			}
			if vi, pi := strings.Index(v.dom, `id="verdict"`), strings.Index(v.dom, `id="pc-table"`); vi < 0 || pi < vi {
				t.Errorf("verdict at %d, per-PC table at %d", vi, pi)
			}
			if len(v.console) > 0 {
				t.Errorf("console messages:\n%s", strings.Join(v.console, "\n"))
			}
			if len(v.requests) > 0 {
				t.Errorf("network requests: %q", v.requests)
			}
			if len(v.screenshot) < 10_000 || !bytes.HasPrefix(v.screenshot, []byte("\x89PNG")) {
				t.Errorf("screenshot of %d bytes", len(v.screenshot))
			}
			pdf := filepath.Join(dir, "report-"+tc.lang.String()+".pdf")
			os.WriteFile(pdf, v.pdf, 0o600)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			text, err := exec.CommandContext(ctx, pdftotext, "-enc", "UTF-8", pdf, "-").Output()
			if err != nil {
				t.Fatalf("pdftotext: %v", err)
			}
			for _, want := range tc.pdf {
				if !strings.Contains(string(text), want) {
					t.Errorf("PDF text lacks %q:\n%s", want, text)
				}
			}
			if d := os.Getenv("M365TAP_ARTIFACTS"); d != "" {
				// Kept for a person to look at.
				os.WriteFile(filepath.Join(d, "report-"+tc.lang.String()+".png"), v.screenshot, 0o644)
				os.WriteFile(filepath.Join(d, "report-"+tc.lang.String()+".pdf"), v.pdf, 0o644)
			}

			// The comparison's file, in the same browser: no console
			// message, no request, the conclusion first and in the DOM.
			c := fixedComparison(t, tc.lang)
			buf.Reset()
			if err := c.Write(&buf, FormatHTML); err != nil {
				t.Fatal(err)
			}
			page = filepath.Join(dir, "compare-"+tc.lang.String()+".html")
			os.WriteFile(page, buf.Bytes(), 0o600)
			opened := time.Now()
			v = b.open(page)
			t.Logf("comparison opened, captured and printed in %v", time.Since(opened).Round(time.Millisecond))
			if len(v.console) > 0 || len(v.requests) > 0 {
				t.Errorf("comparison: console %q, requests %q", v.console, v.requests)
			}
			ci, hi := strings.Index(v.dom, `id="conclusion"`), strings.Index(v.dom, `id="compare-table"`)
			if ci < 0 || hi < ci || !strings.Contains(v.dom, c.Conclusion) || !strings.Contains(v.dom, `lang="`+tc.lang.String()+`"`) {
				t.Errorf("comparison DOM: conclusion at %d, table at %d, %q present %v", ci, hi, c.Conclusion, strings.Contains(v.dom, c.Conclusion))
			}
			if d := os.Getenv("M365TAP_ARTIFACTS"); d != "" {
				os.WriteFile(filepath.Join(d, "compare-"+tc.lang.String()+".png"), v.screenshot, 0o644)
			}
		})
	}
}
