package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/m365tap/m365tap/messages"
	"github.com/m365tap/m365tap/rules"
	"github.com/m365tap/m365tap/sysproxy"
)

// runFlags are `run`'s own flags, beyond the configuration.
type runFlags struct {
	sysproxy     bool // point the PC's proxy settings at the tap while it runs
	exemptBroker bool // and exempt the sign-in broker from loopback isolation
}

// startSysproxy restores a backup an earlier run left behind (a crash, a
// power loss: on every start, with or without --sysproxy), then with
// --sysproxy points the settings at the tap listening on addr. The
// returned function restores them; it is safe to call on every exit path,
// more than once.
func startSysproxy(f runFlags, addr net.Addr, language string, w io.Writer) (func(), error) {
	lang, _ := rules.ParseLanguage(language)
	p := messages.For(lang)
	path, err := sysproxy.DefaultBackupPath()
	if err != nil {
		if f.sysproxy {
			return nil, err
		}
		return func() {}, nil
	}
	sys, err := newSysproxy(path)
	if errors.Is(err, sysproxy.ErrUnsupported) && !f.sysproxy {
		return func() {}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("--sysproxy: %w", err)
	}
	if !f.sysproxy {
		return func() {}, sysproxyRecover(sys, p, w)
	}
	if err := sysproxyOn(sys, p, tapAddress(addr.String()), f.exemptBroker, w); err != nil {
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if err := sysproxyOff(sys, p, w); err != nil {
				fmt.Fprintln(w, "m365tap: sysproxy off:", err)
			}
		})
	}, nil
}
