package cli

import (
	"context"
	"errors"
	"net/http"

	"go.uber.org/zap"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/pac"
	"github.com/m365tap/m365tap/proxy"
	"github.com/m365tap/m365tap/rules"
)

// startPAC loads parent.pac, when set, into opts (the proxy asks it for
// every exchange's way out) and keeps it current every pac.refresh. A PAC
// that cannot be fetched or compiled is logged as pac_failed, with the
// article's cause for a PC whose proxy settings are wrong, and the tap goes
// on with parent.url (or direct) until a reload succeeds, as browsers fall
// back when their PAC fails. stop ends the refreshing.
func startPAC(ctx context.Context, cfg *config.Config, opts *proxy.Options, events *zap.Logger) (stop func(), err error) {
	if cfg.Parent.PAC == "" {
		return func() {}, nil
	}
	lang, _ := rules.ParseLanguage(cfg.Log.Language)
	live, err := pac.NewLive(cfg.Parent.PAC, pac.Options{
		Resolver:    proxy.NewResolver(opts.DNSServers, opts.Hosts),
		Location:    cfg.PACLocation(),
		MyIP:        cfg.PACMyIP(),
		EvalTimeout: cfg.PAC.EvalTimeout,
	}, pacFetchClient)
	if err != nil {
		return nil, err
	}
	opts.PAC, opts.PACFailover = live, cfg.PAC.Failover
	loaded := func(e *pac.Engine) {
		s := e.Script()
		events.Info("pac_loaded", zap.String("pac", live.Location()), zap.String("pac_sha256", s.SHA256),
			zap.Int("pac_size", s.Size), zap.String("pac_function", e.Func()))
	}
	failed := func(err error) {
		c := rules.CauseByID(rules.CauseDeviceProxySettings)
		events.Warn("pac_failed", zap.String("pac", live.Location()), zap.String("error", err.Error()),
			zap.Bool("fallback_parent", opts.Parent != nil),
			zap.String("cause_id", c.ID.String()), zap.String("cause_title", c.Title(lang)),
			zap.String("cause_remedy", c.Remedy(lang)))
	}
	if err := live.Start(ctx); err != nil {
		failed(err)
	} else if e := live.Engine(); e != nil {
		loaded(e)
	}
	if cfg.PAC.Refresh <= 0 {
		return func() {}, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		live.Run(ctx, cfg.PAC.Refresh, loaded, func(err error) {
			if !errors.Is(err, context.Canceled) {
				failed(err)
			}
		})
	}()
	return func() { cancel(); <-done }, nil
}

// pacFetchClient fetches an http(s) PAC; nil takes pac's default (no
// proxy, a bounded time). Tests may replace it.
var pacFetchClient *http.Client
