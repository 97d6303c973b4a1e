package sysproxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Backup is what On found before changing anything, kept in a file until
// Off has put it back: the tap's address (to recognise settings that still
// point at it), each WinINET connection's settings and registry values,
// the WinHTTP proxy, and whether On added the broker's exemption.
type Backup struct {
	Tap     string         `json:"tap"`
	Created time.Time      `json:"created"`
	User    []ConnBackup   `json:"user"`
	Machine *MachineBackup `json:"machine,omitempty"` // nil: On could not change it
	// BrokerExemptAdded: On added the exemption, so Off removes it.
	BrokerExemptAdded bool `json:"broker_exempt_added,omitempty"`
}

// ConnBackup is one WinINET connection before On.
type ConnBackup struct {
	Conn     string       `json:"conn"` // "" is the LAN
	Settings ConnSettings `json:"settings"`
	Raw      []RegValue   `json:"raw"`
}

// MachineBackup is the WinHTTP proxy before On.
type MachineBackup struct {
	Settings MachineSettings `json:"settings"`
	Raw      RegValue        `json:"raw"`
}

// DefaultBackupPath is the backup's place: the user's configuration folder
// (on Windows %AppData%\m365tap), which survives a reboot.
func DefaultBackupPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("sysproxy: no folder for the backup: %w", err)
	}
	return filepath.Join(dir, "m365tap", "sysproxy-backup.json"), nil
}

// readBackup returns the backup at path, or nil when there is none.
func readBackup(path string) (*Backup, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sysproxy: read backup %s: %w", path, err)
	}
	var bk Backup
	if err := json.Unmarshal(b, &bk); err != nil {
		return nil, fmt.Errorf("sysproxy: backup %s is damaged (%v): restore the settings by hand, then delete it", path, err)
	}
	return &bk, nil
}

// writeBackup replaces the file at path as a whole, synced before the
// rename, so that a power loss leaves the old or the new backup, never half.
func writeBackup(path string, bk *Backup) error {
	b, err := json.MarshalIndent(bk, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("sysproxy: backup folder: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("sysproxy: write backup: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("sysproxy: write backup %s: %w", path, err)
	}
	return nil
}
