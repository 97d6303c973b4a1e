package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestEmbeddedSnapshotHash(t *testing.T) {
	sum := sha256.Sum256(embeddedJSON)
	if got := hex.EncodeToString(sum[:]); got != EmbeddedSHA256 {
		t.Fatalf("embedded catalogue SHA-256 = %s, EmbeddedSHA256 = %s: update the version and hash together", got, EmbeddedSHA256)
	}
	// SOURCES.md records 26,786 bytes without a final newline: an editor
	// that "fixes" the file breaks the byte-for-byte copy.
	if len(embeddedJSON) != 26786 || embeddedJSON[len(embeddedJSON)-1] != ']' {
		t.Fatalf("embedded catalogue is %d bytes ending in %q, want 26786 ending in ']'", len(embeddedJSON), embeddedJSON[len(embeddedJSON)-1])
	}
}

func TestEmbeddedCatalogue(t *testing.T) {
	c, err := EmbeddedCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != EmbeddedVersion || c.SHA256 != EmbeddedSHA256 {
		t.Errorf("version %q sha %q", c.Version, c.SHA256)
	}
	// Figures from docs/ncsi-and-m365-facts.md §10.
	areas := map[string]int{}
	required, urls := 0, 0
	var commonRequired, commonRequiredER []int
	for _, e := range c.Endpoints {
		areas[e.ServiceArea]++
		urls += len(e.URLs)
		if e.Required {
			required++
		}
		if e.Required && e.ServiceArea == CommonArea {
			commonRequired = append(commonRequired, e.ID)
			if e.ExpressRoute {
				commonRequiredER = append(commonRequiredER, e.ID)
			}
		}
	}
	if len(c.Endpoints) != 63 || required != 43 || urls != 200 {
		t.Errorf("sets %d required %d urls %d, want 63, 43, 200", len(c.Endpoints), required, urls)
	}
	wantAreas := map[string]int{"Common": 45, "Skype": 7, "SharePoint": 6, "Exchange": 5}
	for a, n := range wantAreas {
		if areas[a] != n {
			t.Errorf("area %s: %d sets, want %d", a, areas[a], n)
		}
	}
	wantCR := []int{46, 47, 49, 51, 53, 56, 59, 64, 66, 69, 70, 71, 73, 79, 83, 84, 86, 89, 91, 92, 125, 147, 153, 156, 158, 159, 160, 184}
	if !slices.Equal(commonRequired, wantCR) {
		t.Errorf("Common required = %v, want %v", commonRequired, wantCR)
	}
	if !slices.Equal(commonRequiredER, []int{46, 56, 64}) {
		t.Errorf("Common required with ExpressRoute = %v, want [46 56 64]", commonRequiredER)
	}
	// Absent fields and the spaced port list of id 2.
	if e := c.Endpoint(11); e == nil || len(e.URLs) != 0 || e.TCPPorts != "" || e.UDPPorts != "3478,3479,3480,3481" {
		t.Errorf("id 11 = %+v", e)
	}
	if e := c.Endpoint(2); e == nil || e.TCPPorts != "143, 587, 993, 995" || e.Notes == "" {
		t.Errorf("id 2 = %+v", e)
	}
	if c.Endpoint(3) != nil {
		t.Error("id 3 is not in the list")
	}
}

// TestEmbeddedMatchesShared guards against the two copies drifting when the
// shared data is refreshed; it is skipped outside the development tree.
func TestEmbeddedMatchesShared(t *testing.T) {
	shared, err := os.ReadFile("../../shared/data/m365-endpoints-worldwide.json")
	if err != nil {
		// Only the development tree has the shared copy beside the
		// repository; the message names no path outside the repository.
		t.Skip("the shared endpoint list is not beside this repository (development tree only)")
	}
	if string(shared) != string(embeddedJSON) {
		t.Error("rules/data/m365-endpoints-worldwide.json differs from shared/data; copy it byte for byte")
	}
}

// minimal is the smallest catalogue ParseCatalogue accepts.
const minimal = `{"id": 56, "serviceArea": "Common", "serviceAreaDisplayName": "Microsoft 365 Common and Office Online",
 "urls": ["login.microsoftonline.com"], "tcpPorts": "80,443", "expressRoute": true, "category": "Allow", "required": true}`

func TestParseCatalogueErrors(t *testing.T) {
	tests := []struct {
		name string
		json string
		is   error
		msg  string // exact message
	}{
		{"not json", `{`, ErrInvalidCatalogue,
			"rules: invalid catalogue: not a JSON array of endpoint sets: unexpected end of JSON input"},
		{"object not array", `{"id": 1}`, ErrInvalidCatalogue,
			"rules: invalid catalogue: not a JSON array of endpoint sets: json: cannot unmarshal object into Go value of type []json.RawMessage"},
		{"empty", `[]`, ErrEmptyCatalogue,
			"rules: the catalogue lists no endpoint sets"},
		{"no common required", `[{"id": 1, "serviceArea": "Exchange", "urls": ["a.example"], "category": "Default", "required": true}]`, ErrNoCommonRequired,
			"rules: the catalogue has no required set in the Common service area"},
		{"wrong type with id", `[` + minimal + `, {"id": 7, "tcpPorts": 443}]`, ErrInvalidCatalogue,
			"rules: catalogue entry id 7: decode: invalid catalogue: json: cannot unmarshal number into Go struct field Endpoint.tcpPorts of type string"},
		{"wrong type without id", `[` + minimal + `, {"urls": "a"}]`, ErrInvalidCatalogue,
			"rules: invalid catalogue: entry #2 of the array: json: cannot unmarshal string into Go struct field Endpoint.urls of type []string"},
		{"id missing", `[{"serviceArea": "Common", "category": "Default"}]`, ErrInvalidCatalogue,
			"rules: catalogue entry id 0: id: invalid catalogue: must be a positive number, got 0"},
		{"area missing", `[{"id": 4, "category": "Default"}]`, ErrInvalidCatalogue,
			"rules: catalogue entry id 4: serviceArea: invalid catalogue: missing"},
		{"bad category", `[{"id": 4, "serviceArea": "Common", "category": "Fast"}]`, ErrInvalidCatalogue,
			`rules: catalogue entry id 4: category: invalid catalogue: "Fast" is not one of Optimize, Allow, Default`},
		{"bad port", `[{"id": 4, "serviceArea": "Common", "category": "Default", "tcpPorts": "80,http"}]`, ErrInvalidCatalogue,
			`rules: catalogue entry id 4: tcpPorts: invalid catalogue: invalid port list "80,http": "http" is not a port (1-65535)`},
		{"bad udp port", `[{"id": 4, "serviceArea": "Common", "category": "Default", "udpPorts": "70000"}]`, ErrInvalidCatalogue,
			`rules: catalogue entry id 4: udpPorts: invalid catalogue: invalid port list "70000": "70000" is not a port (1-65535)`},
		{"bad pattern", `[{"id": 4, "serviceArea": "Common", "category": "Default", "urls": ["ok.example", "https://x.example/"]}]`, ErrInvalidCatalogue,
			`rules: catalogue entry id 4: urls[1]: invalid catalogue: invalid host pattern "https://x.example/": only letters, digits, '-', '_', '.' and one '*' are allowed (no scheme, port or path)`},
		{"duplicate id", `[` + minimal + `,` + minimal + `]`, ErrInvalidCatalogue,
			"rules: catalogue entry id 56: id: invalid catalogue: duplicate id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCatalogue([]byte(tt.json))
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if err.Error() != tt.msg {
				t.Errorf("message\n got: %s\nwant: %s", err, tt.msg)
			}
		})
	}
}

func TestParseCatalogueTolerant(t *testing.T) {
	// A field the web service might add later must not break an update.
	c, err := ParseCatalogue([]byte(`[` + strings.Replace(minimal, `"id": 56,`, `"id": 56, "newField": [1],`, 1) + `]`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != "sha256:"+c.SHA256[:12] {
		t.Errorf("version of a non-embedded catalogue = %q", c.Version)
	}
}

func TestParsePorts(t *testing.T) {
	tests := []struct {
		in   string
		want []uint16
		err  string
	}{
		{"", nil, ""},
		{"443", []uint16{443}, ""},
		{"80,443", []uint16{80, 443}, ""},
		{"443,80", []uint16{80, 443}, ""},
		{"143, 587, 993, 995", []uint16{143, 587, 993, 995}, ""},
		{"3478-3481", []uint16{3478, 3479, 3480, 3481}, ""},
		{"443,443", []uint16{443}, ""},
		{"80,", nil, `invalid port list "80,": empty item`},
		{"0", nil, `invalid port list "0": "0" is not a port (1-65535)`},
		{"65536", nil, `invalid port list "65536": "65536" is not a port (1-65535)`},
		{"9-1", nil, `invalid port list "9-1": range 9-1 runs backwards`},
		{"-5", nil, `invalid port list "-5": "" is not a port (1-65535)`},
	}
	for _, tt := range tests {
		got, err := ParsePorts(tt.in)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err || !errors.Is(err, ErrPorts) {
				t.Errorf("ParsePorts(%q) error = %v, want %s", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParsePorts(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestFormatPorts(t *testing.T) {
	tests := []struct {
		in   []uint16
		want string
	}{
		{nil, ""},
		{[]uint16{443}, "443"},
		{[]uint16{80, 443}, "80,443"},
		{[]uint16{80, 81}, "80,81"},
		{[]uint16{3478, 3479, 3480, 3481}, "3478-3481"},
		{[]uint16{25, 80, 81, 82, 443}, "25,80-82,443"},
	}
	for _, tt := range tests {
		if got := FormatPorts(tt.in); got != tt.want {
			t.Errorf("FormatPorts(%v) = %q, want %q", tt.in, got, tt.want)
		}
		back, err := ParsePorts(tt.want)
		if err != nil || !slices.Equal(back, tt.in) {
			t.Errorf("ParsePorts(FormatPorts(%v)) = %v, %v", tt.in, back, err)
		}
	}
}

func TestDiff(t *testing.T) {
	old, err := EmbeddedCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(old, old); !d.Empty() {
		t.Fatalf("self diff = %+v", d)
	}
	changed, _ := EmbeddedCatalogue()
	// Drop optional set 50, add a URL to 56, drop one from 59, flip 84's
	// ExpressRoute, reorder 47's ports (not a change), add a new set.
	changed.Endpoints = slices.DeleteFunc(changed.Endpoints, func(e Endpoint) bool { return e.ID == 50 })
	changed.Endpoint(56).URLs = append(changed.Endpoint(56).URLs, "new.login.example")
	changed.Endpoint(59).URLs = changed.Endpoint(59).URLs[1:]
	changed.Endpoint(84).ExpressRoute = true
	changed.Endpoint(47).TCPPorts = "80, 443"
	changed.Endpoints = append(changed.Endpoints, Endpoint{ID: 999, ServiceArea: "Common", Category: "Default"})

	d := Diff(old, changed)
	if !slices.Equal(d.Added, []int{999}) || !slices.Equal(d.Removed, []int{50}) {
		t.Errorf("added %v removed %v", d.Added, d.Removed)
	}
	if len(d.Changed) != 3 {
		t.Fatalf("changed = %+v", d.Changed)
	}
	if c := d.Changed[0]; c.ID != 56 || !slices.Equal(c.URLsAdded, []string{"new.login.example"}) || len(c.URLsRemoved)+len(c.Fields) != 0 {
		t.Errorf("56: %+v", c)
	}
	if c := d.Changed[1]; c.ID != 59 || !slices.Equal(c.URLsRemoved, []string{"*.hip.live.com"}) {
		t.Errorf("59: %+v", c)
	}
	if c := d.Changed[2]; c.ID != 84 || !slices.Equal(c.Fields, []FieldChange{{"expressRoute", "false", "true"}}) {
		t.Errorf("84: %+v", c)
	}
}
