package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/messages"
	"github.com/m365tap/m365tap/rules"
)

// tailPoll is how often tail looks for new lines and for a rotated file.
// lumberjack rotates by renaming the file and creating a new one, which
// polling sees as a different file at the same path.
var tailPoll = 250 * time.Millisecond

// NewTailCommand returns `tail`, which follows the event log.
func NewTailCommand(load func() (*config.Config, error)) *cobra.Command {
	var (
		tf    tailFilter
		lines int
	)
	cmd := &cobra.Command{
		Use:   "tail [FILE|-]",
		Short: "Follow the event log, one line per event",
		Long: "tail follows an event log like tail -F, in any of the tap's formats (json, ecs, cef):\n" +
			"it prints the last --lines events,\n" +
			"then each new one as it is written, and keeps following when log rotation renames the\n" +
			"file and starts a new one. Each event becomes one line: time, outcome, method, target,\n" +
			"route, status, duration, rule, cause, error, after the outcome the PC's address (with its\n" +
			"name from clients.names); coloured when standard output is a terminal.\n" +
			"Control characters in a record (escape sequences among them) are shown as escapes, never sent\n" +
			"to the terminal.\n" +
			"Without FILE it follows log.file; - reads standard input to its end.",
		Example: "  m365tap tail m365tap-events.log --failures\n" +
			"  m365tap tail --host '*.microsoftonline.com' --cause required-endpoint-unreachable\n" +
			"  m365tap run | m365tap tail -",
		Args:         cobra.MaximumNArgs(1),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if tf.host != "" {
				if _, err := path.Match(tf.host, ""); err != nil {
					return fmt.Errorf("tail: --host %q: %w", tf.host, err)
				}
				tf.host = strings.ToLower(tf.host)
			}
			name := ""
			// The config gives the language; a file named on the command
			// line is followed even when the config does not load.
			cfg, cfgErr := load()
			lang := rules.LangEN
			if cfgErr == nil {
				lang, _ = rules.ParseLanguage(cfg.Log.Language)
			}
			if len(args) == 1 {
				name = args[0]
			} else {
				if cfgErr != nil {
					return cfgErr
				}
				if name = cfg.Log.File; name == "" {
					return errors.New("tail: name a log file (or - for standard input); log.file is not set")
				}
			}
			out := cmd.OutOrStdout()
			tp := &tailPrinter{w: out, filter: tf, color: isTerminal(out), loc: time.Local, msg: messages.For(lang)}
			if cfgErr == nil {
				tp.names = cfg.ClientNames()
			}
			if name == "-" {
				return tp.copy(cmd.InOrStdin())
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			err := followFile(ctx, name, lines, tp.line)
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&tf.failures, "failures", false, "only exchanges that did not end ok")
	f.StringVar(&tf.rule, "rule", "", "only exchanges matched by this rule id (the winner or any in rule_ids)")
	f.StringVar(&tf.cause, "cause", "", "only exchanges with this cause id")
	f.StringVar(&tf.host, "host", "", "only exchanges whose host matches this glob (login.*, *.office.com)")
	f.IntVarP(&lines, "lines", "n", 10, "start with the last N lines of the file")
	return cmd
}

// tailEvent is what a tail line shows of a record.
type tailEvent struct {
	Level      string   `json:"level"`
	TS         string   `json:"ts"`
	Msg        string   `json:"msg"`
	Method     string   `json:"method"`
	Host       string   `json:"host"`
	Port       int      `json:"port"`
	URL        string   `json:"url"`
	Route      string   `json:"route"`
	Outcome    string   `json:"outcome"`
	Class      string   `json:"class"`
	Status     int      `json:"status"`
	Upstream   int      `json:"upstream_status"`
	DurationMS *float64 `json:"duration_ms"`
	RuleID     string   `json:"rule_id"`
	RuleIDs    string   `json:"rule_ids"`
	CauseID    string   `json:"cause_id"`
	Error      string   `json:"error"`
	ProbeCheck string   `json:"probe_check"`
	TLSAlert   string   `json:"tls_alert"`
	// Client is the PC's address and port; empty for the active probe.
	Client string `json:"client"`
	// Other records.
	Listen       string `json:"listen"`
	RulesVersion string `json:"rules_version"`
	Exchanges    *int   `json:"exchanges"`
	Failed       *int   `json:"failed"`
}

type tailFilter struct {
	failures bool
	rule     string
	cause    string
	host     string
}

func (f tailFilter) active() bool {
	return f.failures || f.rule != "" || f.cause != "" || f.host != ""
}

func (f tailFilter) match(e *tailEvent) bool {
	if e.Msg != "exchange" {
		// start, stop, report and rule records show only when nothing is filtered.
		return !f.active()
	}
	if f.failures && e.Outcome == "ok" {
		return false
	}
	if f.rule != "" && e.RuleID != f.rule && !containsID(e.RuleIDs, f.rule) {
		return false
	}
	if f.cause != "" && e.CauseID != f.cause {
		return false
	}
	if f.host != "" {
		if ok, _ := path.Match(f.host, e.Host); !ok {
			return false
		}
	}
	return true
}

func containsID(list, id string) bool {
	for s := range strings.SplitSeq(list, ",") {
		if s == id {
			return true
		}
	}
	return false
}

// tailPrinter renders records as lines.
type tailPrinter struct {
	w      io.Writer
	filter tailFilter
	color  bool
	loc    *time.Location
	// msg renders the line's few words; nil is English.
	msg *messages.Printer
	// names are clients.names: a PC's address to the name shown beside it.
	names map[string]string
}

func (p *tailPrinter) t(id string, args messages.Args) string {
	if p.msg == nil {
		p.msg = messages.For(rules.LangEN)
	}
	return p.msg.T(id, args)
}

// clientAddress is the PC of an event, without its port; "-" for the
// active probe, which is the tap itself.
func clientAddress(client string) string {
	if client == "" {
		return "-"
	}
	if host, _, err := net.SplitHostPort(client); err == nil {
		return host
	}
	return client
}

// client is the PC of an event as the report names it: NAME (ADDRESS)
// when clients.names names it, else the address alone.
func (p *tailPrinter) client(client string) string {
	addr := clientAddress(client)
	if len(p.names) == 0 || addr == "-" {
		return addr
	}
	if a, err := netip.ParseAddr(addr); err == nil {
		if name := p.names[a.Unmap().String()]; name != "" {
			return name + " (" + a.Unmap().String() + ")"
		}
	}
	return addr
}

const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
	ansiDim    = "\x1b[2m"
)

func (p *tailPrinter) paint(code, s string) string {
	if !p.color || s == "" {
		return s
	}
	return code + s + ansiReset
}

// copy prints every record of r, to its end.
func (p *tailPrinter) copy(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if werr := p.line(line); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// line prints one log line if it passes the filter. A line that is not a
// record is printed as it is (made safe for a terminal), unless a filter
// is set.
func (p *tailPrinter) line(raw []byte) error {
	raw = bytes.TrimRight(raw, "\r\n")
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	e, ok := parseRecord(raw)
	if !ok {
		if p.filter.active() {
			return nil
		}
		_, err := io.WriteString(p.w, termSafe(string(raw))+"\n")
		return err
	}
	if !p.filter.match(&e) {
		return nil
	}
	_, err := io.WriteString(p.w, p.format(&e)+"\n")
	return err
}

// formatTime renders a record's time, RFC 3339 (json, ecs) or
// milliseconds since the epoch (cef), in the printer's zone.
func (p *tailPrinter) formatTime(ts string) string {
	if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
		return t.In(p.loc).Format("15:04:05.000")
	}
	if ms, err := strconv.ParseInt(ts, 10, 64); err == nil {
		return time.UnixMilli(ms).In(p.loc).Format("15:04:05.000")
	}
	return termSafe(ts)
}

// format renders an event as one line. Every value from the record passes
// through termSafe: a crafted record must not drive the terminal.
func (p *tailPrinter) format(e *tailEvent) string {
	parts := []string{p.paint(ansiDim, p.formatTime(e.TS))}
	if e.Msg != "exchange" {
		parts = append(parts, p.paint(ansiCyan, termSafe(e.Msg)))
		for _, kv := range []struct{ k, v string }{
			{"listen", e.Listen}, {"rules_version", e.RulesVersion}, {"error", e.Error},
		} {
			if kv.v != "" {
				parts = append(parts, kv.k+"="+termSafe(kv.v))
			}
		}
		if e.Exchanges != nil {
			parts = append(parts, "exchanges="+strconv.Itoa(*e.Exchanges))
		}
		if e.Failed != nil {
			parts = append(parts, "failed="+strconv.Itoa(*e.Failed))
		}
		return strings.Join(parts, " ")
	}
	outcome := termSafe(e.Outcome)
	switch e.Class {
	case "ok":
		outcome = p.paint(ansiGreen, outcome)
	case "failed":
		outcome = p.paint(ansiRed, outcome)
	default:
		outcome = p.paint(ansiYellow, outcome)
	}
	parts = append(parts, outcome, termSafe(p.client(e.Client)))
	method := e.Method
	if e.ProbeCheck != "" {
		method = p.t("tail.probe", messages.Args{"Check": e.ProbeCheck})
	}
	if method == "" {
		method = "-"
	}
	parts = append(parts, termSafe(method))
	target := e.URL
	if target == "" {
		target = e.Host
		if strings.Contains(target, ":") {
			target = "[" + target + "]"
		}
		if e.Port != 0 {
			target += ":" + strconv.Itoa(e.Port)
		}
	}
	if target == "" {
		target = "-"
	}
	parts = append(parts, termSafe(target))
	if e.Route != "" {
		parts = append(parts, termSafe(e.Route))
	}
	if e.Status != 0 {
		parts = append(parts, strconv.Itoa(e.Status))
	} else if e.Upstream != 0 {
		parts = append(parts, p.t("tail.upstream", messages.Args{"Status": e.Upstream}))
	}
	if e.DurationMS != nil {
		parts = append(parts, strconv.FormatFloat(*e.DurationMS, 'f', -1, 64)+"ms")
	}
	if e.RuleID != "" {
		parts = append(parts, "rule="+termSafe(e.RuleID))
	}
	if e.CauseID != "" {
		parts = append(parts, p.paint(ansiYellow, "cause="+termSafe(e.CauseID)))
	}
	if e.TLSAlert != "" {
		parts = append(parts, "alert="+termSafe(e.TLSAlert))
	}
	if e.Error != "" {
		// strconv.Quote escapes what termSafe does and quotes the text.
		parts = append(parts, p.paint(ansiDim, termSafe(strconv.Quote(e.Error))))
	}
	return strings.Join(parts, " ")
}

// followFile calls emit with each line of name: first the last n lines,
// then every line appended, following the path across rotation (the file
// renamed and a new one created) and truncation, until ctx ends. A file
// that does not exist yet is waited for. A last line without its newline is
// held until the newline arrives.
func followFile(ctx context.Context, name string, n int, emit func([]byte) error) error {
	var (
		f       *os.File
		pending []byte
		buf     = make([]byte, 64<<10)
	)
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	flush := func(b []byte) error {
		pending = append(pending, b...)
		for {
			i := bytes.IndexByte(pending, '\n')
			if i < 0 {
				return nil
			}
			if err := emit(pending[:i+1]); err != nil {
				return err
			}
			pending = pending[i+1:]
		}
	}
	drain := func() error {
		for {
			k, err := f.Read(buf)
			if k > 0 {
				if ferr := flush(buf[:k]); ferr != nil {
					return ferr
				}
			}
			if err == io.EOF || k == 0 {
				return nil
			}
			if err != nil {
				return err
			}
		}
	}
	first := true
	for {
		if f == nil {
			var err error
			f, err = os.Open(name)
			switch {
			case err == nil:
				if first {
					if err := seekLastLines(f, n); err != nil {
						return err
					}
				}
				pending = pending[:0]
			case errors.Is(err, os.ErrNotExist):
				f = nil
			default:
				return fmt.Errorf("tail: %w", err)
			}
			first = false
		}
		if f != nil {
			if err := drain(); err != nil {
				return err
			}
			// Rotated (another file at the path) or truncated: what the old
			// file still held was read above; start the new one from its
			// beginning.
			cur, err := f.Stat()
			if err != nil {
				return fmt.Errorf("tail: %w", err)
			}
			pos, _ := f.Seek(0, io.SeekCurrent)
			st, err := os.Stat(name)
			switch {
			case err != nil && !errors.Is(err, os.ErrNotExist):
				return fmt.Errorf("tail: %w", err)
			case err == nil && !os.SameFile(cur, st):
				// Lines written between the drain and the rename.
				if err := drain(); err != nil {
					return err
				}
				f.Close()
				f = nil
				continue
			case err == nil && st.Size() < pos:
				if _, err := f.Seek(0, io.SeekStart); err != nil {
					return fmt.Errorf("tail: %w", err)
				}
				pending = pending[:0]
				continue
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(tailPoll):
		}
	}
}

// seekLastLines positions f at the start of its last n lines (0: at its end).
func seekLastLines(f *os.File, n int) error {
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil || n <= 0 || end == 0 {
		return err
	}
	const chunk = 32 << 10
	buf := make([]byte, chunk)
	pos := end
	newlines := 0
	// The file's own final newline ends the last line; it does not start one.
	for pos > 0 {
		size := int64(chunk)
		if pos < size {
			size = pos
		}
		pos -= size
		if _, err := f.ReadAt(buf[:size], pos); err != nil && err != io.EOF {
			return err
		}
		for i := size - 1; i >= 0; i-- {
			if buf[i] != '\n' || pos+i == end-1 {
				continue
			}
			newlines++
			if newlines == n {
				_, err := f.Seek(pos+i+1, io.SeekStart)
				return err
			}
		}
	}
	_, err = f.Seek(0, io.SeekStart)
	return err
}
