package cli

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/m365tap/m365tap/rules"
)

// runRules executes `rules ARGS…` and returns what it printed.
func runRules(t *testing.T, env RulesEnv, args ...string) (string, error) {
	t.Helper()
	cmd := NewRulesCommand(env)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestRulesList(t *testing.T) {
	out, err := runRules(t, RulesEnv{}, "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"rules 2026052900: 67 of 67 shown",
		"ID ", "login.microsoftonline.com", "*cdn.onenote.net",
		"ncsi-connecttest-v4", `probe: GET /connecttest.txt expects "Microsoft Connect Test"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q", want)
		}
	}

	out, err = runRules(t, RulesEnv{}, "list", "--required", "--service-area", "common", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version string
		Rules   []struct {
			ID           string   `json:"id"`
			ServiceArea  string   `json:"service_area"`
			Required     bool     `json:"required"`
			ExpressRoute bool     `json:"express_route"`
			TCPPorts     []uint16 `json:"tcp_ports"`
		}
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var ids []string
	for _, r := range doc.Rules {
		if !r.Required || r.ServiceArea != "Common" {
			t.Errorf("filter let %+v through", r)
		}
		ids = append(ids, r.ID)
	}
	if len(ids) != 28 || ids[0] != "46" || ids[27] != "184" || doc.Version != "2026052900" {
		t.Errorf("version %s, Common required ids %v", doc.Version, ids)
	}
	if !doc.Rules[0].ExpressRoute || !slices.Equal(doc.Rules[0].TCPPorts, []uint16{80, 443}) {
		t.Errorf("46 = %+v", doc.Rules[0])
	}

	if _, err := runRules(t, RulesEnv{}, "list", "--format", "yaml"); err == nil ||
		!strings.Contains(err.Error(), `"yaml" is not one of table, json`) {
		t.Errorf("bad format: %v", err)
	}
}

type rulesMatchDoc struct {
	Host         string  `json:"host"`
	Port         int     `json:"port"`
	ExpressRoute bool    `json:"express_route"`
	Winner       *string `json:"winner"`
	Matches      []struct {
		ID      string `json:"id"`
		Kind    string `json:"kind"`
		Pattern string `json:"pattern"`
	} `json:"matches"`
	Outcomes []struct {
		Outcome    string `json:"outcome"`
		CauseID    string `json:"cause_id"`
		CauseRule  string `json:"cause_rule"`
		CauseTitle string `json:"cause_title"`
	} `json:"outcomes"`
}

func (d rulesMatchDoc) cause(outcome string) (id, rule, title string) {
	for _, o := range d.Outcomes {
		if o.Outcome == outcome {
			return o.CauseID, o.CauseRule, o.CauseTitle
		}
	}
	return "missing", "", ""
}

func runMatchJSON(t *testing.T, env RulesEnv, target string) rulesMatchDoc {
	t.Helper()
	out, err := runRules(t, env, "match", target, "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var d rulesMatchDoc
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return d
}

func TestRulesMatch(t *testing.T) {
	d := runMatchJSON(t, RulesEnv{}, "login.microsoftonline.com:443")
	if d.Winner == nil || *d.Winner != "56" || len(d.Matches) != 2 || d.Matches[1].ID != "59" || d.Port != 443 {
		t.Fatalf("match = %+v", d)
	}
	failures := 0
	for _, o := range rules.Outcomes() {
		if o.Failed() {
			failures++
		}
	}
	if len(d.Outcomes) != failures {
		t.Errorf("%d outcomes listed, %d failure outcomes exist", len(d.Outcomes), failures)
	}
	if id, rule, _ := d.cause("connect_timeout"); id != "required-endpoint-unreachable" || rule != "56" {
		t.Errorf("connect_timeout -> %s by %s", id, rule)
	}
	if id, _, _ := d.cause("parent_auth_required"); id != "device-proxy-settings" {
		t.Errorf("parent_auth_required -> %s", id)
	}
	if id, _, _ := d.cause("probe_redirect"); id != "" {
		t.Errorf("probe_redirect on a non-probe rule -> %q", id)
	}

	// ExpressRoute in use, ER "No" set, Japanese titles.
	env := RulesEnv{ExpressRoute: func() bool { return true }, Language: func() rules.Language { return rules.LangJA }}
	d = runMatchJSON(t, env, "https://aadcdn.msftauth.net/shared/1.0/content/js/x.js")
	if d.Port != 443 || !d.ExpressRoute || d.Winner == nil || *d.Winner != "59" {
		t.Fatalf("match = %+v", d)
	}
	id, _, title := d.cause("tls_failure")
	if id != "expressroute-path" || title != rules.CauseByID(rules.CauseExpressRoutePath).Title(rules.LangJA) {
		t.Errorf("tls_failure -> %s %q", id, title)
	}

	d = runMatchJSON(t, RulesEnv{}, "http://www.msftconnecttest.com/connecttest.txt")
	if d.Winner == nil || *d.Winner != "ncsi-connecttest-v4" || d.Matches[0].Kind != "ncsi-probe" {
		t.Fatalf("probe match = %+v", d)
	}
	if id, _, _ := d.cause("probe_content_mismatch"); id != "ncsi-no-internet" {
		t.Errorf("probe_content_mismatch -> %s", id)
	}

	d = runMatchJSON(t, RulesEnv{}, "example.org")
	if d.Winner != nil || len(d.Matches) != 0 || d.Port != 0 {
		t.Errorf("example.org = %+v", d)
	}
	if id, rule, _ := d.cause("parent_unreachable"); id != "device-proxy-settings" || rule != "" {
		t.Errorf("no rule, parent_unreachable -> %s by %q", id, rule)
	}

	out, err := runRules(t, RulesEnv{}, "match", "autodiscover.contoso.onmicrosoft.com:443")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"winner:  8 (catalogue, Exchange, required yes, ExpressRoute no) by autodiscover.*.onmicrosoft.com", "78 ", "dns_nxdomain"} {
		if !strings.Contains(out, want) {
			t.Errorf("table output lacks %q:\n%s", want, out)
		}
	}

	for _, bad := range []string{"login.microsoftonline.com:0", "login.microsoftonline.com:https", ":443", "ftp://x.example/"} {
		if _, err := runRules(t, RulesEnv{}, "match", bad); err == nil {
			t.Errorf("match %q accepted", bad)
		}
	}
}

func TestParseMatchTarget(t *testing.T) {
	tests := []struct {
		in   string
		host string
		port int
	}{
		{"login.microsoftonline.com", "login.microsoftonline.com", 0},
		{"login.microsoftonline.com:443", "login.microsoftonline.com", 443},
		{"[2620:1ec:c::10]:443", "2620:1ec:c::10", 443},
		{"2620:1ec:c::10", "2620:1ec:c::10", 0},
		{"http://www.msftconnecttest.com/connecttest.txt", "www.msftconnecttest.com", 80},
		{"https://x.example:8443/a", "x.example", 8443},
	}
	for _, tt := range tests {
		h, p, err := parseMatchTarget(tt.in)
		if err != nil || h != tt.host || p != tt.port {
			t.Errorf("parseMatchTarget(%q) = %q, %d, %v", tt.in, h, p, err)
		}
	}
}

// modifiedCatalogue is the embedded snapshot with set 50 removed and a URL
// added to set 56, re-encoded the way the web service formats it.
func modifiedCatalogue(t *testing.T) []byte {
	t.Helper()
	var sets []map[string]any
	if err := json.Unmarshal(rules.EmbeddedJSON(), &sets); err != nil {
		t.Fatal(err)
	}
	sets = slices.DeleteFunc(sets, func(s map[string]any) bool { return s["id"] == 50.0 })
	for _, s := range sets {
		if s["id"] == 56.0 {
			s["urls"] = append(s["urls"].([]any), "login.new.example")
		}
	}
	data, err := json.MarshalIndent(sets, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func cataloguePathEnv(path string) RulesEnv {
	return RulesEnv{CataloguePath: func() string { return path }}
}

// rulesDirNames lists dir, to prove no temporary file is left behind.
func rulesDirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestRulesUpdateFromFile(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "download.json")
	newData := modifiedCatalogue(t)
	if err := os.WriteFile(src, newData, 0o600); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "state", "endpoints.json")

	out, err := runRules(t, cataloguePathEnv(store), "update", "--from", src)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	next, _ := rules.ParseCatalogue(newData)
	for _, want := range []string{
		"catalogue updated: 2026052900 -> " + next.Version + " (62 endpoint sets), stored at " + store,
		"changes against the embedded snapshot:",
		"ids removed: 50\n",
		"id 56: urls added: login.new.example\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ids added") || strings.Contains(out, "urls removed") {
		t.Errorf("output reports changes that were not made:\n%s", out)
	}
	stored, err := os.ReadFile(store)
	if err != nil || !bytes.Equal(stored, newData) {
		t.Fatalf("stored file differs from the source (%v)", err)
	}
	if info, _ := os.Stat(store); info.Mode().Perm() != 0o644 {
		t.Errorf("stored file mode %v", info.Mode().Perm())
	}

	// The same file again: nothing to do.
	out, err = runRules(t, cataloguePathEnv(store), "update", "--from", src)
	if err != nil || !strings.Contains(out, "catalogue unchanged: "+next.Version) {
		t.Errorf("second update: %v\n%s", err, out)
	}

	// Back to the embedded snapshot: the diff runs the other way.
	if err := os.WriteFile(src, rules.EmbeddedJSON(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runRules(t, cataloguePathEnv(store), "update", "--from", src)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"-> 2026052900 (63 endpoint sets)", "changes against the stored catalogue:", "ids added: 50\n", "id 56: urls removed: login.new.example\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if names := rulesDirNames(t, filepath.Dir(store)); !slices.Equal(names, []string{"endpoints.json"}) {
		t.Errorf("files left in the store directory: %v", names)
	}
}

func TestRulesUpdateRefusesBadCatalogue(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "endpoints.json")
	good := modifiedCatalogue(t)
	if err := os.WriteFile(store, good, 0o644); err != nil {
		t.Fatal(err)
	}
	noCommonRequired := strings.ReplaceAll(string(rules.EmbeddedJSON()), `"serviceArea": "Common"`, `"serviceArea": "Other"`)
	tests := []struct {
		name string
		data string
		msg  string
	}{
		{"truncated", string(good[:len(good)/2]), "not a JSON array of endpoint sets"},
		{"empty list", "[]", "the catalogue lists no endpoint sets"},
		{"html", "<html>sign in</html>", "not a JSON array of endpoint sets"},
		{"no Common required sets", noCommonRequired, "the catalogue has no required set in the Common service area"},
		{"bad port", strings.Replace(string(good), `"tcpPorts": "25"`, `"tcpPorts": "smtp"`, 1), "catalogue entry id 10: tcpPorts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "bad.json")
			if err := os.WriteFile(src, []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := runRules(t, cataloguePathEnv(store), "update", "--from", src)
			if err == nil || !strings.Contains(err.Error(), "refusing the new catalogue, "+store+" is unchanged") ||
				!strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %v, want %q\n%s", err, tt.msg, out)
			}
			if now, _ := os.ReadFile(store); !bytes.Equal(now, good) {
				t.Fatal("the good catalogue was touched")
			}
		})
	}
	if names := rulesDirNames(t, dir); !slices.Equal(names, []string{"endpoints.json"}) {
		t.Errorf("files left in the store directory: %v", names)
	}

	if _, err := runRules(t, cataloguePathEnv(store), "update", "--from", filepath.Join(dir, "missing.json")); err == nil {
		t.Error("a missing source was accepted")
	}
	if _, err := runRules(t, RulesEnv{}, "update", "--from", store); err == nil ||
		!strings.Contains(err.Error(), "no catalogue path is configured") {
		t.Errorf("no path: %v", err)
	}
	if _, err := runRules(t, cataloguePathEnv(store), "update"); err == nil || !strings.Contains(err.Error(), `"from" not set`) {
		t.Errorf("no --from: %v", err)
	}
}

func TestRulesUpdateFromURL(t *testing.T) {
	newData := modifiedCatalogue(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/endpoints/worldwide":
			w.Header().Set("Content-Type", "application/json")
			w.Write(newData)
		default:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	store := filepath.Join(t.TempDir(), "endpoints.json")

	out, err := runRules(t, cataloguePathEnv(store), "update", "--from", srv.URL+"/endpoints/worldwide?clientrequestid=b10c5ed1-bad1-445f-b386-b919946339a7")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "ids removed: 50") {
		t.Errorf("output:\n%s", out)
	}
	if got, _ := os.ReadFile(store); !bytes.Equal(got, newData) {
		t.Error("stored file differs from the download")
	}

	_, err = runRules(t, cataloguePathEnv(store), "update", "--from", srv.URL+"/down")
	if err == nil || !strings.Contains(err.Error(), "503 Service Unavailable") {
		t.Errorf("server error: %v", err)
	}
	if got, _ := os.ReadFile(store); !bytes.Equal(got, newData) {
		t.Error("a failed download touched the stored catalogue")
	}
}

func TestRulesUpdateFromStdin(t *testing.T) {
	store := filepath.Join(t.TempDir(), "endpoints.json")
	cmd := NewRulesCommand(cataloguePathEnv(store))
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetIn(bytes.NewReader(rules.EmbeddedJSON()))
	cmd.SetArgs([]string{"update", "--from", "-"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	// Identical to the embedded snapshot, but the path did not exist: it is
	// stored, with nothing to report.
	if !strings.Contains(out.String(), "-> 2026052900 (63 endpoint sets)") || !strings.Contains(out.String(), "no endpoint set changed") {
		t.Errorf("output:\n%s", out.String())
	}
	if got, _ := os.ReadFile(store); !bytes.Equal(got, rules.EmbeddedJSON()) {
		t.Error("not stored")
	}
}
