package cli

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestLogHosts: --from-log takes every required host a session saw,
// wildcard sets' included, and leaves out probes and hosts no required set
// names.
func TestLogHosts(t *testing.T) {
	log := `{"level":"warn","ts":"2026-12-03T10:00:01Z","msg":"exchange","client":"10.0.0.5:1","method":"CONNECT","host":"www.office.com","port":443,"route":"direct","outcome":"tls_failure","class":"failed","rule_id":"147","rule_ids":"147","rule_source":"catalogue","service_area":"Common","required":true}
{"level":"info","ts":"2026-12-03T10:00:02Z","msg":"exchange","client":"10.0.0.5:2","method":"CONNECT","host":"login.microsoftonline.com","port":443,"route":"direct","outcome":"ok","class":"ok","rule_id":"56","rule_ids":"56","rule_source":"catalogue","service_area":"Common","required":true}
{"level":"info","ts":"2026-12-03T10:00:03Z","msg":"exchange","client":"10.0.0.5:3","method":"GET","host":"www.msftconnecttest.com","port":80,"route":"direct","outcome":"ok","class":"ok","rule_id":"ncsi-connecttest-v4","rule_source":"ncsi","required":true,"probe":true}
{"level":"info","ts":"2026-12-03T10:00:04Z","msg":"exchange","client":"10.0.0.5:4","method":"GET","host":"intranet.example","port":80,"route":"direct","outcome":"ok","class":"ok"}
`
	f := filepath.Join(t.TempDir(), "events.log")
	if err := os.WriteFile(f, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := logHosts([]string{f})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"login.microsoftonline.com", "www.office.com"}; !slices.Equal(got, want) {
		t.Errorf("logHosts = %v, want %v", got, want)
	}
	if _, err := logHosts([]string{filepath.Join(t.TempDir(), "missing.log")}); err == nil {
		t.Error("a missing log is not an error")
	}
}
