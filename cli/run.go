package cli

import (
	"context"
	"fmt"
	"io"
	"net"

	"go.uber.org/zap"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/internal/localnet"
	"github.com/m365tap/m365tap/internal/ruleset"
	"github.com/m365tap/m365tap/logs"
	"github.com/m365tap/m365tap/proxy"
)

// runTap runs the proxy until SIGINT or SIGTERM (on Windows: Ctrl-C,
// Ctrl-Break, closing the console window), then shuts down in order:
// stop accepting, let exchanges finish within shutdown.grace, close the rest
// (each logs a shutdown event), flush the logs.
func runTap(ctx context.Context, cfg *config.Config, stderr io.Writer) error {
	return runTapWith(ctx, cfg, stderr, runFlags{})
}

// runTapWith is runTap with run's own flags; with --sysproxy the PC's proxy
// settings point at the tap from start to stop, restored first of all when
// it stops.
func runTapWith(ctx context.Context, cfg *config.Config, stderr io.Writer, flags runFlags) (err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	stopReq := notifyStop(ctx)
	defer stopReq.stop()
	ctx = stopReq.ctx

	logOpts := logs.ConfigOptions(cfg.Log)
	logOpts.Meta.Version = Version
	logOpts.Stderr = stderr
	lg, err := logs.New(logOpts)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := lg.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	sess, events := newSession(lg.Events, cfg.Log.Language)
	lg.Events = events

	set, _, err := ruleset.Load(cfg)
	if err != nil {
		return err
	}
	// The same way out as `probe` (dialer, resolver, timeouts, rules),
	// plus what only a listening tap needs.
	opts, err := tapOptions(cfg, set, lg.Events)
	if err != nil {
		return err
	}
	sess.rules = opts.Rules
	sess.coll.SetNames(cfg.ClientNames())
	// probes.ca_file is read before the tap listens: a file that cannot
	// be read stops the start rather than letting the system roots stand
	// in for it.
	roots, err := cfg.ProbeRoots()
	if err != nil {
		return err
	}
	opts.IdleTimeout = cfg.Timeouts.Idle
	opts.ReadHeaderTimeout = cfg.Timeouts.ReadHeader
	opts.TunnelLinger = cfg.Timeouts.TunnelLinger
	opts.TunnelIdle = cfg.Timeouts.TunnelIdle
	opts.AllowPorts = cfg.Access.Ports
	opts.Allow = cfg.AllowPrefixes()
	if cfg.AllowInterfaces() {
		nets, err := localnet.Networks()
		if err != nil {
			return fmt.Errorf("access.allow: %s: %w", config.AllowInterfacesEntry, err)
		}
		opts.Allow = append(opts.Allow, nets...)
	}
	opts.Users = cfg.Users()
	opts.MaxConns = cfg.Access.MaxConns
	opts.MaxConnsPerClient = cfg.Access.MaxConnsPerClient
	opts.Debug = lg.Debug
	stopPAC, err := startPAC(ctx, cfg, &opts, lg.Events)
	if err != nil {
		return err
	}
	defer stopPAC()
	srv := proxy.New(opts)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	restoreProxy, err := startSysproxy(flags, ln.Addr(), cfg.Log.Language, stderr)
	if err != nil {
		ln.Close()
		return err
	}
	defer restoreProxy()
	parent := ""
	if u := cfg.ParentURL(); u != nil {
		parent = u.Host
	}
	lg.Events.Info("start",
		zap.String("version", Version),
		zap.String("listen", ln.Addr().String()),
		zap.String("parent", parent),
		zap.Bool("probes_direct", cfg.Probes.Direct),
		zap.Bool("express_route", cfg.Network.ExpressRoute),
		zap.String("rules_version", set.Version()),
		zap.String("config", cfg.Source()),
	)
	fmt.Fprintf(stderr, "m365tap %s listening on %s\n", Version, ln.Addr())

	go ruleset.Watch(ctx, cfg, opts.Rules, lg.Events)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	stopProbes := startProbes(ctx, srv, cfg.Probes.Interval, roots)
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	// The PC stops pointing at the tap before the tap stops.
	restoreProxy()
	stopProbes()
	srv.Shutdown(stopReq.grace(cfg.Shutdown.Grace))
	sess.finish(lg.Events, stderr)
	lg.Events.Info("stop", zap.String("listen", ln.Addr().String()))
	return err
}
