// Package cli holds m365tap's commands: run (the default), version, config,
// rules. It wires config, logs, rules and proxy together and owns nothing
// else.
package cli

import (
	"errors"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/internal/ruleset"
	"github.com/m365tap/m365tap/rules"
)

// Version is set at build time with -ldflags "-X github.com/m365tap/m365tap/cli.Version=...".
var Version = "0.1.0-dev"

// exitError carries a specific exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Main runs the command line and returns the process exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		fmt.Fprintln(stderr, "m365tap:", errorText(err, args))
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		return 1
	}
	return 0
}

func newRoot() *cobra.Command {
	var cfgFile string
	var flags runFlags
	root := &cobra.Command{
		Use:           "m365tap",
		Short:         "Forward proxy that logs why Microsoft 365 sign-in traffic fails",
		Long:          "m365tap forwards HTTP and HTTPS (CONNECT) traffic, recognises the required Microsoft 365\nendpoints and the Windows NCSI probes, and logs one JSON event per exchange with its outcome\nand the matching cause from the support article.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&cfgFile, "config", "", "YAML config file (default ./"+config.DefaultFile+" if present)")
	config.BindFlags(root.PersistentFlags())
	load := func() (*config.Config, error) {
		return config.Load(config.LoadOptions{File: cfgFile, Flags: root.PersistentFlags()})
	}
	run := &cobra.Command{
		Use:   "run",
		Short: "Run the tap (the default command)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			return runTapWith(cmd.Context(), cfg, cmd.ErrOrStderr(), flags)
		},
	}
	for _, fs := range []*pflag.FlagSet{run.Flags(), root.Flags()} {
		fs.BoolVar(&flags.sysproxy, "sysproxy", false, "Windows: point this PC's proxy settings at the tap while it runs (see `m365tap sysproxy`)")
		fs.BoolVar(&flags.exemptBroker, "exempt-broker", false, "with --sysproxy: also exempt the sign-in broker from loopback isolation")
	}
	root.RunE = run.RunE
	root.Args = cobra.NoArgs
	root.AddCommand(run, newVersionCmd(), NewConfigCommand(load), NewRulesCommand(rulesEnv(load)))
	root.AddCommand(NewProbeCommand(load), NewReportCommand(load), NewTailCommand(load), NewHashCommand())
	root.AddCommand(NewPACCommand(load))
	root.AddCommand(NewSysproxyCommand(load), NewNCSICommand(load))
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "m365tap %s (%s)\n", Version, goVersion())
		},
	}
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return "unknown"
}

// rulesEnv gives the rules commands the same rule set and settings the tap
// would use, read lazily so `rules list` works without a config file.
func rulesEnv(load func() (*config.Config, error)) RulesEnv {
	return RulesEnv{
		Load: func() (*rules.Set, *rules.Catalogue, error) {
			cfg, err := load()
			if err != nil {
				return nil, nil, err
			}
			return ruleset.Load(cfg)
		},
		ExpressRoute: func() bool {
			cfg, err := load()
			return err == nil && cfg.Network.ExpressRoute
		},
		Language: func() rules.Language {
			if cfg, err := load(); err == nil {
				if l, err := rules.ParseLanguage(cfg.Log.Language); err == nil {
					return l
				}
			}
			return rules.LangEN
		},
		CataloguePath: func() string {
			cfg, err := load()
			if err != nil {
				return ""
			}
			return ruleset.CataloguePath(cfg)
		},
	}
}
