package cli

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/internal/ruleset"
	"github.com/m365tap/m365tap/report"
	"github.com/m365tap/m365tap/rules"
)

// reportFormat is a --format value restricted to the report's renderings.
type reportFormat report.Format

func (f *reportFormat) String() string { return string(*f) }
func (f *reportFormat) Type() string   { return "text|json|markdown|html" }
func (f *reportFormat) Set(s string) error {
	v, err := report.ParseFormat(s)
	if err != nil {
		return err
	}
	*f = reportFormat(v)
	return nil
}

// NewReportCommand returns `report`, the session's diagnosis from logs.
func NewReportCommand(load func() (*config.Config, error)) *cobra.Command {
	format := reportFormat(report.FormatText)
	var (
		names          []string
		compare        bool
		labelA, labelB string
	)
	cmd := &cobra.Command{
		Use:   "report [FILE...]",
		Short: "Summarise a session's log: outcomes per rule, the article causes that apply, what to do",
		Long: "report reads JSON-lines event logs (rotated files compressed with gzip too; - is\n" +
			"standard input) and prints, per matched rule, the exchanges that ended ok and with each\n" +
			"other outcome, the last failure and its cause; then the article causes that apply, most\n" +
			"important first, with their remedies, and the facts a reader of the log would miss.\n" +
			"Each cause is split by where it was seen: on every PC that tried the host (look at the\n" +
			"shared network path) or on one PC only (look at that PC), as the article asks. Hosts are\n" +
			"filed under the Common endpoint set when several sets list them. --format html writes one\n" +
			"self-contained file to attach to a ticket, for a report or a --compare.\n" +
			"Without FILE it reads log.file and its rotated copies. Texts follow log.language (--language).",
		Example: "  m365tap report m365tap-events.log m365tap-events-*.log.gz\n" +
			"  m365tap report --format markdown --language ja m365tap-events.log\n" +
			"  m365tap report --format html --client-name 10.0.0.21=PC-SALES-07 session.log > report.html\n" +
			"  m365tap report --compare --label-a 'Wi-Fi, VPN' --label-b 'wired LAN' wifi.log,wifi-1.log.gz wired.log\n" +
			"  m365tap report --compare --format html --language ja before.log after.log > compare.html\n" +
			"  m365tap run | tee session.log; m365tap report - < session.log",
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			lang, err := rules.ParseLanguage(cfg.Log.Language)
			if err != nil {
				return err
			}
			if compare && len(args) != 2 {
				return fmt.Errorf("report: --compare needs two sessions, A and B (each a log file or several, comma separated), got %d arguments", len(args))
			}
			if len(args) == 0 {
				if cfg.Log.File == "" {
					return errors.New("report: name a log file (or - for standard input); log.file is not set")
				}
				if args, err = logFiles(cfg.Log.File); err != nil {
					return err
				}
			}
			// clients.names, with --client-name winning for an address
			// named in both.
			clientNames := cfg.ClientNames()
			flagNames, err := parseClientNames(names)
			if err != nil {
				return err
			}
			if len(flagNames) > 0 && clientNames == nil {
				clientNames = map[string]string{}
			}
			maps.Copy(clientNames, flagNames)
			// The catalogue files each host under its Common set; without
			// it (a broken rules file) the tap's own choice stands.
			set, _, setErr := ruleset.Load(cfg)
			summarise := func(files []string) (*report.Summary, error) {
				agg := report.Aggregate{Names: clientNames}
				if setErr == nil {
					agg.Rules = set
				}
				skipped := 0
				for _, name := range files {
					st, err := readLog(&agg, name, cmd.InOrStdin())
					if err != nil {
						return nil, err
					}
					skipped += st.Skipped
				}
				if skipped > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "m365tap: report: skipped %d lines that are not JSON records\n", skipped)
				}
				return agg.Summary(lang), nil
			}
			if compare {
				var sums [2]*report.Summary
				labels := [2]string{labelA, labelB}
				for i, arg := range args {
					files := strings.Split(arg, ",")
					if labels[i] == "" {
						labels[i] = filepath.Base(files[0])
					}
					if sums[i], err = summarise(files); err != nil {
						return err
					}
				}
				return report.Compare(sums[0], sums[1], labels[0], labels[1]).Write(cmd.OutOrStdout(), report.Format(format))
			}
			sum, err := summarise(args)
			if err != nil {
				return err
			}
			return sum.Write(cmd.OutOrStdout(), report.Format(format))
		},
	}
	cmd.Flags().Var(&format, "format", "output format: text, json, markdown or html")
	cmd.Flags().StringArrayVar(&names, "client-name", nil, "ADDRESS=NAME: show the PC at ADDRESS by NAME (repeatable; wins over clients.names)")
	cmd.Flags().BoolVar(&compare, "compare", false, "compare two sessions A and B (each FILE[,FILE...]): what fails in one and works in the other")
	cmd.Flags().StringVar(&labelA, "label-a", "", "name of session A in --compare (default: its first file's name)")
	cmd.Flags().StringVar(&labelB, "label-b", "", "name of session B in --compare (default: its first file's name)")
	return cmd
}

// parseClientNames reads ADDRESS=NAME pairs.
func parseClientNames(pairs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range pairs {
		addr, name, ok := strings.Cut(p, "=")
		a, err := netip.ParseAddr(strings.TrimSpace(addr))
		if !ok || err != nil || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("report: --client-name %q: want ADDRESS=NAME, an IP address and a name", p)
		}
		out[a.Unmap().String()] = strings.TrimSpace(name)
	}
	return out, nil
}

func readLog(agg *report.Aggregate, name string, stdin io.Reader) (report.ReadStats, error) {
	if name == "-" {
		st, err := agg.Read(stdin)
		if err != nil {
			err = fmt.Errorf("report: standard input: %w", err)
		}
		return st, err
	}
	f, err := os.Open(name)
	if err != nil {
		return report.ReadStats{}, fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	st, err := agg.Read(f)
	if err != nil {
		err = fmt.Errorf("report: %s: %w", name, err)
	}
	return st, err
}

// logFiles is the log file and the copies log rotation left beside it:
// NAME-<time>.EXT, gzip-compressed as NAME-<time>.EXT.gz when log.compress
// is on.
func logFiles(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	ext := filepath.Ext(base)
	prefix := strings.TrimSuffix(base, ext) + "-"
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasPrefix(n, prefix) && (strings.HasSuffix(n, ext) || strings.HasSuffix(n, ext+".gz")) {
			out = append(out, filepath.Join(filepath.Dir(path), n))
		}
	}
	slices.Sort(out)
	if _, err := os.Stat(path); err == nil {
		out = append(out, path)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("report: %s: no such file, and no rotated copies beside it", path)
	}
	return out, nil
}

// session gathers the running tap's diagnosis: a report.Collector teed onto
// the event logger, summarised at shutdown.
type session struct {
	coll *report.Collector
	lang rules.Language
	// rules is the tap's rule set, reloaded as the tap reloads it: the
	// summary files hosts under their Common set as `report` does.
	rules *atomic.Pointer[rules.Set]
}

// newSession tees a collector onto events and returns the logger to use
// from then on.
func newSession(events *zap.Logger, language string) (*session, *zap.Logger) {
	s := &session{coll: report.NewCollector()}
	s.lang, _ = rules.ParseLanguage(language)
	return s, events.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewTee(c, s.coll)
	}))
}

// finish prints the summary to stderr and logs it as a "report" record.
func (s *session) finish(events *zap.Logger, stderr io.Writer) {
	if s.rules != nil {
		s.coll.SetRules(s.rules.Load())
	}
	sum := s.coll.Summary(s.lang)
	fmt.Fprintln(stderr)
	_ = sum.Write(stderr, report.FormatText)
	events.Info("report", zap.Inline(sum))
}
