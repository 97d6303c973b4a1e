package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/messages"
	"github.com/m365tap/m365tap/rules"
	"github.com/m365tap/m365tap/sysproxy"
)

// newSysproxy opens the PC's proxy settings; tests replace it with fakes.
var newSysproxy = sysproxy.New

// NewSysproxyCommand returns `sysproxy on|off|status`.
func NewSysproxyCommand(load func() (*config.Config, error)) *cobra.Command {
	var (
		backup       string
		tap          string
		exemptBroker bool
	)
	open := func() (*sysproxy.System, *messages.Printer, error) {
		cfg, err := load()
		if err != nil {
			return nil, nil, err
		}
		lang, _ := rules.ParseLanguage(cfg.Log.Language)
		if tap == "" {
			tap = tapAddress(cfg.Listen)
		}
		path := backup
		if path == "" {
			if path, err = sysproxy.DefaultBackupPath(); err != nil {
				return nil, nil, err
			}
		}
		sys, err := newSysproxy(path)
		return sys, messages.For(lang), err
	}
	cmd := &cobra.Command{
		Use:   "sysproxy",
		Short: "Point this Windows PC's proxy settings at the tap, and put them back",
		Long: "sysproxy on records the current settings in a backup file, then points at the tap the user's\n" +
			"proxy (WinINET: the LAN and every dial-up/VPN connection) and the machine's WinHTTP proxy,\n" +
			"which NCSI tries first (this part needs an elevated prompt). Bypass lists keep their entries\n" +
			"plus <local>. --exempt-broker also exempts the sign-in broker (" + sysproxy.BrokerPackage + ")\n" +
			"from loopback isolation. sysproxy off restores exactly what the backup holds, only where the\n" +
			"setting still points at the tap, also after a crash. sysproxy status shows each store now.",
		Example: "  m365tap sysproxy on --exempt-broker\n  m365tap sysproxy status\n  m365tap sysproxy off",
	}
	cmd.PersistentFlags().StringVar(&backup, "backup", "", "backup file (default: the user's configuration folder, m365tap\\sysproxy-backup.json)")
	cmd.PersistentFlags().StringVar(&tap, "tap", "", "the tap's address as host:port (default: listen, with 127.0.0.1 for an unspecified address)")
	on := &cobra.Command{
		Use:   "on",
		Short: "Record the current settings, then point them at the tap",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sys, p, err := open()
			if err != nil {
				return err
			}
			return sysproxyOn(sys, p, tap, exemptBroker, cmd.OutOrStdout())
		},
	}
	on.Flags().BoolVar(&exemptBroker, "exempt-broker", false, "also exempt the sign-in broker from loopback isolation (elevated prompt)")
	off := &cobra.Command{
		Use:   "off",
		Short: "Restore the settings the backup holds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sys, p, err := open()
			if err != nil {
				return err
			}
			return sysproxyOff(sys, p, cmd.OutOrStdout())
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show what each proxy store holds and whether it points at the tap",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sys, p, err := open()
			if err != nil {
				return err
			}
			st, err := sys.Status()
			if err != nil {
				return err
			}
			printStatus(cmd.OutOrStdout(), p, st, tap, sys.Backup)
			return nil
		},
	}
	cmd.AddCommand(on, off, status)
	return cmd
}

// tapAddress is where the PC's programs reach the tap: the listen address,
// with loopback for an unspecified one.
func tapAddress(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// sysproxyOn restores a backup left by an earlier run first (a crash, a
// power loss), then points the settings at tap.
func sysproxyOn(sys *sysproxy.System, p *messages.Printer, tap string, exemptBroker bool, w io.Writer) error {
	if err := sysproxyRecover(sys, p, w); err != nil {
		return err
	}
	steps, err := sys.On(tap, exemptBroker)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, p.T("sysproxy.on.heading", messages.Args{"Tap": tap, "Backup": sys.Backup}))
	printSteps(w, p, steps)
	for _, s := range steps {
		if s.Store == sysproxy.StoreMachine && s.Result != sysproxy.Changed && s.Result != sysproxy.AlreadySet {
			fmt.Fprintln(w, p.T("sysproxy.on.ncsi_warning", nil))
		}
	}
	return nil
}

// sysproxyRecover restores a backup that is still there, saying so.
func sysproxyRecover(sys *sysproxy.System, p *messages.Printer, w io.Writer) error {
	st, err := sys.Status()
	if err != nil || st.Backup == nil {
		return err
	}
	fmt.Fprintln(w, p.T("sysproxy.recover", messages.Args{"Created": st.Backup.Created.Local().Format(time.RFC3339), "Tap": st.Backup.Tap}))
	return sysproxyOff(sys, p, w)
}

func sysproxyOff(sys *sysproxy.System, p *messages.Printer, w io.Writer) error {
	steps, err := sys.Off()
	if err != nil {
		return err
	}
	if steps == nil {
		fmt.Fprintln(w, p.T("sysproxy.off.none", nil))
		return nil
	}
	fmt.Fprintln(w, p.T("sysproxy.off.heading", nil))
	printSteps(w, p, steps)
	if st, err := sys.Status(); err == nil && st.Backup != nil {
		fmt.Fprintln(w, p.T("sysproxy.off.pending", messages.Args{"Backup": sys.Backup}))
	}
	return nil
}

func storeName(p *messages.Printer, store sysproxy.Store, conn string) string {
	switch {
	case store == sysproxy.StoreUser && conn == "":
		return p.T("sysproxy.store.wininet_lan", nil)
	case store == sysproxy.StoreUser:
		return p.T("sysproxy.store.wininet", messages.Args{"Conn": conn})
	case store == sysproxy.StoreBroker:
		return p.T("sysproxy.store.broker", messages.Args{"Package": sysproxy.BrokerPackage})
	}
	return p.T("sysproxy.store."+string(store), nil)
}

func printSteps(w io.Writer, p *messages.Printer, steps []sysproxy.Step) {
	for _, s := range steps {
		line := "  " + storeName(p, s.Store, s.Conn) + ": " + p.T("sysproxy.result."+string(s.Result), nil)
		switch {
		case s.Result == sysproxy.LeftAlone || s.Result == sysproxy.AlreadySet:
			if s.Before != "" {
				line += " " + p.T("sysproxy.now", messages.Args{"Now": s.Before})
			}
		case s.Before != "" || s.After != "":
			line += " " + p.T("sysproxy.change", messages.Args{"Before": orDash(s.Before), "After": orDash(s.After)})
		}
		if s.Err != nil && !errors.Is(s.Err, sysproxy.ErrNeedsElevation) {
			line += " (" + s.Err.Error() + ")"
		}
		fmt.Fprintln(w, line)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printStatus(w io.Writer, p *messages.Printer, st *sysproxy.Status, tap, path string) {
	if tap == "" && st.Backup != nil {
		tap = st.Backup.Tap
	}
	points := func(ok bool) string {
		if ok {
			return p.T("sysproxy.status.points", messages.Args{"Tap": tap})
		}
		return p.T("sysproxy.status.not_points", messages.Args{"Tap": tap})
	}
	for _, c := range st.User {
		if c.Err != nil {
			fmt.Fprintf(w, "%s: %v\n", storeName(p, sysproxy.StoreUser, c.Conn), c.Err)
			continue
		}
		fmt.Fprintf(w, "%s: %s — %s\n", storeName(p, sysproxy.StoreUser, c.Conn), c.Settings, points(c.Settings.PointsAt(tap)))
	}
	if st.Machine != nil {
		fmt.Fprintf(w, "%s: %s — %s\n", storeName(p, sysproxy.StoreMachine, ""), st.Machine, points(st.Machine.PointsAt(tap)))
	} else {
		fmt.Fprintf(w, "%s: %v\n", storeName(p, sysproxy.StoreMachine, ""), st.MachineErr)
	}
	switch {
	case st.Broker == nil:
		fmt.Fprintf(w, "%s: %s (%v)\n", storeName(p, sysproxy.StoreBroker, ""), p.T("sysproxy.status.unknown", nil), st.BrokerErr)
	case *st.Broker:
		fmt.Fprintf(w, "%s: %s\n", storeName(p, sysproxy.StoreBroker, ""), p.T("sysproxy.status.exempt", nil))
	default:
		fmt.Fprintf(w, "%s: %s\n", storeName(p, sysproxy.StoreBroker, ""), p.T("sysproxy.status.not_exempt", nil))
	}
	if st.Backup != nil {
		fmt.Fprintln(w, p.T("sysproxy.status.backup", messages.Args{"Backup": path,
			"Created": st.Backup.Created.Local().Format(time.RFC3339), "Tap": st.Backup.Tap}))
	} else {
		fmt.Fprintln(w, p.T("sysproxy.status.no_backup", nil))
	}
}
