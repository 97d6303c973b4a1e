package sysproxy

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// System is the PC's proxy settings and the backup file that guards them.
type System struct {
	User    UserStore
	Machine MachineStore // nil: not available
	Exempt  Exempter     // nil: not available
	Backup  string       // the backup file's path
	Now     func() time.Time
}

// Store names a setting in a Step.
type Store string

const (
	StoreUser    Store = "wininet" // the user's proxy, per connection
	StoreMachine Store = "winhttp" // the machine's WinHTTP proxy
	StoreBroker  Store = "broker"  // the sign-in broker's loopback exemption
	StoreNotify  Store = "notify"  // telling running programs
	StoreBackup  Store = "backup"  // the backup file
)

// Result is what happened to one setting; its string is what the command
// prints in English and the key of its Japanese text.
type Result string

const (
	Changed        Result = "changed"         // now points at the tap
	AlreadySet     Result = "already_set"     // pointed at the tap before On
	Restored       Result = "restored"        // the backup's value is back
	LeftAlone      Result = "left_alone"      // changed by someone else since On: not touched
	NeedsElevation Result = "needs_elevation" // an elevated prompt is needed
	Failed         Result = "failed"
	Unavailable    Result = "unavailable" // this system lacks the store or tool
)

// Step is one setting's outcome.
type Step struct {
	Store  Store
	Conn   string // WinINET connection; "" is the LAN
	Result Result
	Before string // what it was, for the person reading
	After  string
	Err    error
}

// ErrBackupExists: On found a backup of an earlier On; Off must restore it
// first, or the original settings would be overwritten with the tap's.
var ErrBackupExists = errors.New("a backup of earlier settings exists")

// On records the current settings in the backup file, then points the
// user's proxy (LAN and every dial-up/VPN connection) and the machine's
// WinHTTP proxy at tap (host:port), bypass lists keeping the user's entries
// plus <local>; with exemptBroker it also exempts the sign-in broker from
// loopback isolation. A store that cannot be changed (no elevation) is
// reported and left out of the backup.
func (s *System) On(tap string, exemptBroker bool) ([]Step, error) {
	if old, err := readBackup(s.Backup); err != nil {
		return nil, err
	} else if old != nil {
		return nil, fmt.Errorf("%w (%s, made %s for %s): run `m365tap sysproxy off` first", ErrBackupExists,
			s.Backup, old.Created.Format(time.RFC3339), old.Tap)
	}
	bk := &Backup{Tap: tap, Created: s.now()}
	conns, err := s.User.Connections()
	if err != nil {
		return nil, fmt.Errorf("sysproxy: list connections: %w", err)
	}
	for _, c := range conns {
		cs, err := s.User.Query(c)
		if err != nil {
			return nil, fmt.Errorf("sysproxy: read the proxy of %s: %w", connName(c), err)
		}
		raw, err := s.User.Raw(c)
		if err != nil {
			return nil, fmt.Errorf("sysproxy: read the registry of %s: %w", connName(c), err)
		}
		bk.User = append(bk.User, ConnBackup{Conn: c, Settings: cs, Raw: raw})
	}
	var steps []Step
	if s.Machine != nil {
		ms, err := s.Machine.Get()
		if err == nil {
			var raw RegValue
			if raw, err = s.Machine.Raw(); err == nil {
				bk.Machine = &MachineBackup{Settings: ms, Raw: raw}
			}
		}
		if err != nil {
			steps = append(steps, Step{Store: StoreMachine, Result: Failed, Err: err})
		}
	}
	var brokerWas bool
	if exemptBroker && s.Exempt != nil {
		var err error
		if brokerWas, err = s.Exempt.IsExempt(BrokerPackage); err != nil {
			steps = append(steps, Step{Store: StoreBroker, Result: resultOf(err), Err: err})
			exemptBroker = false
		} else {
			// Recorded before adding: after a crash between the two, Off
			// removes an exemption that may not exist, which is harmless.
			bk.BrokerExemptAdded = !brokerWas
		}
	}
	// Nothing changes before the backup is safely on disk.
	if err := writeBackup(s.Backup, bk); err != nil {
		return nil, err
	}

	for _, b := range bk.User {
		if b.Settings.PointsAt(tap) {
			steps = append(steps, Step{Store: StoreUser, Conn: b.Conn, Result: AlreadySet, Before: b.Settings.String()})
			continue
		}
		want := ConnSettings{Flags: ProxyTypeDirect | ProxyTypeProxy, Server: tap, Bypass: withLocal(b.Settings.Bypass),
			AutoConfigURL: b.Settings.AutoConfigURL}
		err := s.User.Set(b.Conn, want)
		steps = append(steps, Step{Store: StoreUser, Conn: b.Conn, Result: resultOr(err, Changed),
			Before: b.Settings.String(), After: want.String(), Err: err})
	}
	if err := s.User.Notify(); err != nil {
		steps = append(steps, Step{Store: StoreNotify, Result: Failed, Err: err})
	}
	rewrite := false
	if bk.Machine != nil {
		old := bk.Machine.Settings
		if old.PointsAt(tap) {
			steps = append(steps, Step{Store: StoreMachine, Result: AlreadySet, Before: old.String()})
		} else {
			want := MachineSettings{AccessType: AccessNamed, Proxy: tap, Bypass: withLocal(old.Bypass)}
			err := s.Machine.Set(want)
			steps = append(steps, Step{Store: StoreMachine, Result: resultOr(err, Changed), Before: old.String(), After: want.String(), Err: err})
			if err != nil {
				// Nothing of the machine's to restore.
				bk.Machine, rewrite = nil, true
			}
		}
	}
	if exemptBroker && s.Exempt != nil {
		switch {
		case brokerWas:
			steps = append(steps, Step{Store: StoreBroker, Result: AlreadySet})
		default:
			err := s.Exempt.Add(BrokerPackage)
			steps = append(steps, Step{Store: StoreBroker, Result: resultOr(err, Changed), Err: err})
			if err != nil {
				bk.BrokerExemptAdded, rewrite = false, true
			}
		}
	}
	if rewrite {
		if err := writeBackup(s.Backup, bk); err != nil {
			steps = append(steps, Step{Store: StoreBackup, Result: Failed, Err: err})
		}
	}
	return steps, nil
}

// Off restores what the backup holds, only where the setting still points
// at the backup's tap, then deletes the backup. What could not be restored
// (no elevation, an error) stays in the backup for the next Off. No backup:
// nothing to do, and no step.
func (s *System) Off() ([]Step, error) {
	bk, err := readBackup(s.Backup)
	if err != nil || bk == nil {
		return nil, err
	}
	var steps []Step
	pending := &Backup{Tap: bk.Tap, Created: bk.Created}
	// Every connection is judged as it is before anything is restored:
	// where connections share storage (wine keeps one setting for all),
	// restoring the first must not make the others look changed by
	// someone else.
	current := make([]ConnSettings, len(bk.User))
	queryErr := make([]error, len(bk.User))
	for i, b := range bk.User {
		current[i], queryErr[i] = s.User.Query(b.Conn)
	}
	var restored []int // steps of connections set back, for the exact bytes
	for i, b := range bk.User {
		cur := current[i]
		switch {
		case queryErr[i] != nil:
			steps = append(steps, Step{Store: StoreUser, Conn: b.Conn, Result: Failed, Err: queryErr[i]})
			pending.User = append(pending.User, b)
		case !cur.PointsAt(bk.Tap):
			steps = append(steps, Step{Store: StoreUser, Conn: b.Conn, Result: LeftAlone, Before: cur.String()})
		default:
			err := s.User.Set(b.Conn, b.Settings)
			steps = append(steps, Step{Store: StoreUser, Conn: b.Conn, Result: resultOr(err, Restored),
				Before: cur.String(), After: b.Settings.String(), Err: err})
			if err != nil {
				pending.User = append(pending.User, b)
			} else {
				restored = append(restored, len(steps)-1)
			}
		}
	}
	if len(bk.User) > 0 {
		if err := s.User.Notify(); err != nil {
			steps = append(steps, Step{Store: StoreNotify, Result: Failed, Err: err})
		}
	}
	// The exact registry values, counters and all, last: after the
	// notification, which may write the settings again (wine does).
	for _, i := range restored {
		b := backupOf(bk.User, steps[i].Conn)
		if err := s.User.RestoreRaw(b.Conn, b.Raw); err != nil {
			steps[i].Result, steps[i].Err = resultOf(err), err
			pending.User = append(pending.User, b)
		}
	}
	if m := bk.Machine; m != nil {
		if s.Machine == nil {
			steps = append(steps, Step{Store: StoreMachine, Result: Unavailable})
			pending.Machine = m
		} else if cur, err := s.Machine.Get(); err != nil {
			steps = append(steps, Step{Store: StoreMachine, Result: Failed, Err: err})
			pending.Machine = m
		} else if !cur.PointsAt(bk.Tap) {
			steps = append(steps, Step{Store: StoreMachine, Result: LeftAlone, Before: cur.String()})
		} else {
			err := s.Machine.Set(m.Settings)
			if err == nil {
				err = s.Machine.RestoreRaw(m.Raw)
			}
			steps = append(steps, Step{Store: StoreMachine, Result: resultOr(err, Restored), Before: cur.String(), After: m.Settings.String(), Err: err})
			if err != nil {
				pending.Machine = m
			}
		}
	}
	if bk.BrokerExemptAdded {
		var err error = ErrUnsupported
		if s.Exempt != nil {
			err = s.Exempt.Remove(BrokerPackage)
		}
		steps = append(steps, Step{Store: StoreBroker, Result: resultOr(err, Restored), Err: err})
		pending.BrokerExemptAdded = err != nil
	}
	if len(pending.User) == 0 && pending.Machine == nil && !pending.BrokerExemptAdded {
		if err := os.Remove(s.Backup); err != nil {
			steps = append(steps, Step{Store: StoreBackup, Result: Failed, Err: err})
		}
		return steps, nil
	}
	if err := writeBackup(s.Backup, pending); err != nil {
		steps = append(steps, Step{Store: StoreBackup, Result: Failed, Err: err})
	}
	return steps, nil
}

// Status is what each store holds now.
type Status struct {
	Backup  *Backup // nil: none
	User    []ConnStatus
	Machine *MachineSettings // nil: not readable
	// MachineErr is why Machine is nil.
	MachineErr error
	// Broker: the sign-in broker is exempt from loopback isolation; nil
	// when it could not be told (BrokerErr says why).
	Broker    *bool
	BrokerErr error
}

// ConnStatus is one WinINET connection now.
type ConnStatus struct {
	Conn     string
	Settings ConnSettings
	Err      error
}

// Status reads every store and the backup.
func (s *System) Status() (*Status, error) {
	bk, err := readBackup(s.Backup)
	if err != nil {
		return nil, err
	}
	st := &Status{Backup: bk}
	conns, err := s.User.Connections()
	if err != nil {
		return nil, fmt.Errorf("sysproxy: list connections: %w", err)
	}
	for _, c := range conns {
		cs, err := s.User.Query(c)
		st.User = append(st.User, ConnStatus{Conn: c, Settings: cs, Err: err})
	}
	if s.Machine != nil {
		ms, err := s.Machine.Get()
		if err == nil {
			st.Machine = &ms
		}
		st.MachineErr = err
	} else {
		st.MachineErr = ErrUnsupported
	}
	if s.Exempt != nil {
		ok, err := s.Exempt.IsExempt(BrokerPackage)
		if err == nil {
			st.Broker = &ok
		}
		st.BrokerErr = err
	} else {
		st.BrokerErr = ErrUnsupported
	}
	return st, nil
}

func backupOf(list []ConnBackup, conn string) ConnBackup {
	for _, b := range list {
		if b.Conn == conn {
			return b
		}
	}
	return ConnBackup{Conn: conn}
}

func (s *System) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func resultOf(err error) Result {
	switch {
	case errors.Is(err, ErrNeedsElevation):
		return NeedsElevation
	case errors.Is(err, ErrUnsupported), errors.Is(err, ErrUnavailable):
		return Unavailable
	}
	return Failed
}

func resultOr(err error, ok Result) Result {
	if err == nil {
		return ok
	}
	return resultOf(err)
}

func connName(c string) string {
	if c == "" {
		return "the LAN"
	}
	return "connection " + c
}

// String shows the settings as Internet Options does, for a person.
func (c ConnSettings) String() string {
	var s string
	if c.Flags&ProxyTypeAutoDetect != 0 {
		s += "auto-detect; "
	}
	if c.Flags&ProxyTypeAutoProxyURL != 0 {
		s += "script " + c.AutoConfigURL + "; "
	}
	if c.Flags&ProxyTypeProxy != 0 {
		s += "proxy " + c.Server
		if c.Bypass != "" {
			s += " (bypass " + c.Bypass + ")"
		}
	} else {
		s += "direct"
	}
	return s
}

// String shows the setting as netsh winhttp show proxy does, for a person.
func (m MachineSettings) String() string {
	if m.AccessType != AccessNamed {
		return "direct"
	}
	if m.Bypass != "" {
		return "proxy " + m.Proxy + " (bypass " + m.Bypass + ")"
	}
	return "proxy " + m.Proxy
}
