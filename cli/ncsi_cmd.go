package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/messages"
	"github.com/m365tap/m365tap/ncsi"
	"github.com/m365tap/m365tap/rules"
	"github.com/m365tap/m365tap/sysproxy"
)

// NewNCSICommand returns `ncsi`: what NCSI will do on this Windows PC.
func NewNCSICommand(load func() (*config.Config, error)) *cobra.Command {
	return &cobra.Command{
		Use:   "ncsi",
		Short: "Show what Windows' NCSI will fetch on this PC, and through which proxy",
		Long: "ncsi reads NCSI's configuration on this Windows PC: the active web and DNS probes\n" +
			"(HKLM\\" + ncsi.ParametersKey + "), the policies that change them (active probing\n" +
			"off, passive polling, global DNS, the corporate probes) and the WinHTTP proxy NCSI tries\n" +
			"first. A customised web probe (another host, path or text) and a corporate website probe\n" +
			"become rules of the tap automatically, so its events and report recognise this PC's probe.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			lang, _ := rules.ParseLanguage(cfg.Log.Language)
			src, err := ncsi.System()
			if err != nil {
				return err
			}
			s, err := ncsi.Read(src)
			if err != nil {
				return err
			}
			var machine *sysproxy.MachineSettings
			var machineErr error
			if sys, err := newSysproxy(""); err != nil {
				machineErr = err
			} else if m, err := sys.Machine.Get(); err != nil {
				machineErr = err
			} else {
				machine = &m
			}
			printNCSI(cmd.OutOrStdout(), messages.For(lang), s, machine, machineErr)
			return nil
		},
	}
}

func printNCSI(w io.Writer, p *messages.Printer, s *ncsi.Settings, machine *sysproxy.MachineSettings, machineErr error) {
	onOff := func(on bool) string {
		if on {
			return p.T("ncsi.on", nil)
		}
		return p.T("ncsi.off", nil)
	}
	fmt.Fprintln(w, p.T("ncsi.heading", nil))
	if s.ActiveProbing {
		fmt.Fprintln(w, p.T("ncsi.active", messages.Args{"State": onOff(true)}))
	} else {
		fmt.Fprintln(w, p.T("ncsi.active.off", messages.Args{"By": s.ActiveProbingOffBy}))
	}
	for _, web := range s.Web {
		id := "ncsi.web"
		if web.Custom {
			id = "ncsi.web.custom"
		}
		fmt.Fprintln(w, p.T(id, messages.Args{"Family": web.Family, "URL": web.URL(), "Content": web.Content}))
	}
	for _, d := range s.DNS {
		fmt.Fprintln(w, p.T("ncsi.dns", messages.Args{"Family": d.Family, "Host": d.Host, "Content": d.Content}))
	}
	fmt.Fprintln(w, p.T("ncsi.passive", messages.Args{"State": onOff(!s.PassivePollingOff)}))
	fmt.Fprintln(w, p.T("ncsi.globaldns", messages.Args{"State": onOff(s.GlobalDNS)}))
	if c := s.Corporate; c != (ncsi.Corporate{}) {
		fmt.Fprintln(w, p.T("ncsi.corporate", messages.Args{"URL": orDash(c.WebsiteProbeURL), "Host": orDash(c.DNSProbeHost),
			"Address": orDash(c.DNSProbeAddress), "Prefixes": orDash(c.SitePrefixes), "Location": orDash(c.DomainLocationURL)}))
	}
	switch {
	case machine == nil:
		fmt.Fprintln(w, p.T("ncsi.proxy.unknown", messages.Args{"Error": fmt.Sprint(machineErr)}))
	case machine.AccessType == sysproxy.AccessNamed:
		fmt.Fprintln(w, p.T("ncsi.proxy.named", messages.Args{"Proxy": machine.Proxy, "Bypass": orDash(machine.Bypass)}))
	default:
		fmt.Fprintln(w, p.T("ncsi.proxy.direct", nil))
	}
	for _, sp := range s.ProbeSpecs() {
		fmt.Fprintln(w, p.T("ncsi.rule", messages.Args{"ID": sp.ID, "Host": sp.URLs[0]}))
	}
}
