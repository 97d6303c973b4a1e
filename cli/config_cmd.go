package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/m365tap/m365tap/config"
)

// NewConfigCommand returns `config` with its subcommands: `print` shows the
// config that load builds (file, environment, flags), and `check FILE`
// validates one file on its own.
func NewConfigCommand(load func() (*config.Config, error)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show or check the configuration",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newConfigPrintCmd(load), newConfigCheckCmd())
	return cmd
}

func newConfigPrintCmd(load func() (*config.Config, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "print",
		Short: "Print the effective configuration as YAML, secrets masked",
		Long: "Print the configuration the tap would run with: defaults, then the config file, then\n" +
			"M365TAP_* environment variables, then flags. Every key is shown; the parent proxy\n" +
			"password reads xxxxx. The output is itself a valid config file.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			y, err := cfg.YAML()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			// Which file was read is the first question when a setting
			// is not what the operator expected.
			if src := cfg.Source(); src != "" {
				fmt.Fprintf(out, "# file: %s\n", src)
			} else {
				fmt.Fprintln(out, "# file: none (defaults, environment and flags only)")
			}
			_, err = out.Write(y)
			return err
		},
	}
}

func newConfigCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a config file",
		Long: "Validate FILE on its own: the environment and flags are ignored, so the verdict is\n" +
			"about the file and holds on any machine. Prints \"FILE: ok\", or every problem found,\n" +
			"one per line, and then exits non-zero.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := args[0]
			// A non-nil empty Env keeps this shell's M365TAP_* out of the verdict.
			_, err := config.Load(config.LoadOptions{File: file, Env: []string{}})
			out := cmd.OutOrStdout()
			if err == nil {
				_, err = fmt.Fprintf(out, "%s: ok\n", file)
				return err
			}
			problems := printProblems(out, err)
			if problems == 1 {
				return fmt.Errorf("%s: 1 problem", file)
			}
			return fmt.Errorf("%s: %d problems", file, problems)
		},
	}
}

// printProblems writes each of Load's joined errors on its own line and
// counts them.
func printProblems(w io.Writer, err error) int {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		n := 0
		for _, e := range j.Unwrap() {
			n += printProblems(w, e)
		}
		return n
	}
	fmt.Fprintln(w, err)
	return 1
}
