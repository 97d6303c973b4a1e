package rules

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// The embedded snapshot is a byte-for-byte copy of the worldwide "endpoints"
// answer of the Office 365 IP Address and URL web service (provenance:
// shared/data/SOURCES.md). The answer itself carries no version; Microsoft
// numbers releases YYYYMMDDNN and this data was first published on
// 2026-05-29, hence the inferred version below. A test checks the hash, so
// the file cannot change without this block changing too.
const (
	EmbeddedVersion = "2026052900"
	EmbeddedSHA256  = "12fc35fe1c331caa606e8b9d5c21c8f8f26f9ccfa5cb18e5f001449f8f850ab0"
)

//go:embed data/m365-endpoints-worldwide.json
var embeddedJSON []byte

// EmbeddedJSON returns a copy of the embedded snapshot's bytes.
func EmbeddedJSON() []byte { return bytes.Clone(embeddedJSON) }

// Endpoint is one endpoint set of the official list, field for field.
// Absent fields decode to their zero values.
type Endpoint struct {
	ID                     int      `json:"id"`
	ServiceArea            string   `json:"serviceArea"`
	ServiceAreaDisplayName string   `json:"serviceAreaDisplayName"`
	URLs                   []string `json:"urls,omitempty"`
	IPs                    []string `json:"ips,omitempty"`
	TCPPorts               string   `json:"tcpPorts,omitempty"`
	UDPPorts               string   `json:"udpPorts,omitempty"`
	ExpressRoute           bool     `json:"expressRoute"`
	Category               string   `json:"category"`
	Required               bool     `json:"required"`
	Notes                  string   `json:"notes,omitempty"`
}

// Catalogue is a parsed and validated copy of the official list.
type Catalogue struct {
	// Version is EmbeddedVersion when the bytes are the embedded snapshot,
	// otherwise "sha256:" and the first 12 hex digits of SHA256, because the
	// web service's answer carries no version of its own.
	Version string
	// SHA256 is the hex SHA-256 of the bytes that were parsed.
	SHA256    string
	Endpoints []Endpoint
}

// Sentinel errors of ParseCatalogue, for callers that branch on them.
var (
	ErrEmptyCatalogue   = errors.New("the catalogue lists no endpoint sets")
	ErrNoCommonRequired = errors.New("the catalogue has no required set in the Common service area")
	ErrInvalidCatalogue = errors.New("invalid catalogue")
)

// errCatalogueEntryFmt names the entry and field of a validation error.
const errCatalogueEntryFmt = "rules: catalogue entry id %d: %s: %w"

// EmbeddedCatalogue parses the embedded snapshot. Each call returns a fresh
// copy, so callers may keep or modify it.
func EmbeddedCatalogue() (*Catalogue, error) {
	return ParseCatalogue(embeddedJSON)
}

// ParseCatalogue parses and validates the web service's JSON. It refuses
// anything the matcher could not use faithfully: unknown categories, bad
// port lists, unusable host patterns, duplicate ids, and lists that are
// empty or lack the Common required sets (a truncated download or an answer
// from the wrong method would otherwise silently disable every cause of
// article §1). Fields the web service may add later are ignored.
func ParseCatalogue(data []byte) (*Catalogue, error) {
	sum := sha256.Sum256(data)
	c := &Catalogue{SHA256: hex.EncodeToString(sum[:])}
	if c.SHA256 == EmbeddedSHA256 {
		c.Version = EmbeddedVersion
	} else {
		c.Version = "sha256:" + c.SHA256[:12]
	}

	// Decode through raw messages first so an error names the entry.
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("rules: %w: not a JSON array of endpoint sets: %w", ErrInvalidCatalogue, err)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("rules: %w", ErrEmptyCatalogue)
	}
	c.Endpoints = make([]Endpoint, len(raw))
	seen := make(map[int]bool, len(raw))
	commonRequired := false
	for i, msg := range raw {
		e := &c.Endpoints[i]
		if err := json.Unmarshal(msg, e); err != nil {
			// Name the entry by its id when at least that decodes.
			var idOnly struct {
				ID int `json:"id"`
			}
			if json.Unmarshal(msg, &idOnly) == nil && idOnly.ID != 0 {
				return nil, fmt.Errorf(errCatalogueEntryFmt, idOnly.ID, "decode", fmt.Errorf("%w: %w", ErrInvalidCatalogue, err))
			}
			return nil, fmt.Errorf("rules: %w: entry #%d of the array: %w", ErrInvalidCatalogue, i+1, err)
		}
		if err := e.validate(); err != nil {
			return nil, err
		}
		if seen[e.ID] {
			return nil, fmt.Errorf(errCatalogueEntryFmt, e.ID, "id", fmt.Errorf("%w: duplicate id", ErrInvalidCatalogue))
		}
		seen[e.ID] = true
		commonRequired = commonRequired || e.Required && e.ServiceArea == CommonArea
	}
	if !commonRequired {
		return nil, fmt.Errorf("rules: %w", ErrNoCommonRequired)
	}
	slices.SortFunc(c.Endpoints, func(a, b Endpoint) int { return a.ID - b.ID })
	return c, nil
}

func (e *Endpoint) validate() error {
	bad := func(field string, format string, args ...any) error {
		return fmt.Errorf(errCatalogueEntryFmt, e.ID, field, fmt.Errorf("%w: "+format, append([]any{ErrInvalidCatalogue}, args...)...))
	}
	if e.ID <= 0 {
		return bad("id", "must be a positive number, got %d", e.ID)
	}
	if strings.TrimSpace(e.ServiceArea) == "" {
		return bad("serviceArea", "missing")
	}
	if !slices.Contains(categories, e.Category) {
		return bad("category", "%q is not one of Optimize, Allow, Default", e.Category)
	}
	for i, u := range e.URLs {
		if _, err := parsePattern(u); err != nil {
			return bad(fmt.Sprintf("urls[%d]", i), "%v", err)
		}
	}
	if _, err := ParsePorts(e.TCPPorts); err != nil {
		return bad("tcpPorts", "%v", err)
	}
	if _, err := ParsePorts(e.UDPPorts); err != nil {
		return bad("udpPorts", "%v", err)
	}
	return nil
}

// Endpoint returns the set with the given id, or nil.
func (c *Catalogue) Endpoint(id int) *Endpoint {
	i, ok := slices.BinarySearchFunc(c.Endpoints, id, func(e Endpoint, id int) int { return e.ID - id })
	if !ok {
		return nil
	}
	return &c.Endpoints[i]
}

// CatalogueDiff is what changed between two catalogues, by endpoint set id.
type CatalogueDiff struct {
	Added   []int            // ids only in the new catalogue
	Removed []int            // ids only in the old catalogue
	Changed []EndpointChange // ids in both whose URLs or flags differ, by id
}

// EndpointChange describes one set present in both catalogues.
type EndpointChange struct {
	ID          int
	URLsAdded   []string
	URLsRemoved []string
	Fields      []FieldChange // flags and ports other than URLs
}

// FieldChange is one changed scalar field, rendered as text.
type FieldChange struct {
	Field    string // the JSON field name
	Old, New string
}

// Empty reports whether nothing changed.
func (d CatalogueDiff) Empty() bool {
	return len(d.Added) == 0 && len(d.Removed) == 0 && len(d.Changed) == 0
}

// Diff compares two catalogues. Ports are compared as parsed sets, so
// "443,80" and "80,443" are the same; IP ranges are not compared because the
// tap matches on names only.
func Diff(from, to *Catalogue) CatalogueDiff {
	var d CatalogueDiff
	for _, e := range to.Endpoints {
		if from.Endpoint(e.ID) == nil {
			d.Added = append(d.Added, e.ID)
		}
	}
	for _, o := range from.Endpoints {
		n := to.Endpoint(o.ID)
		if n == nil {
			d.Removed = append(d.Removed, o.ID)
			continue
		}
		ch := EndpointChange{
			ID:          o.ID,
			URLsAdded:   missingFrom(n.URLs, o.URLs),
			URLsRemoved: missingFrom(o.URLs, n.URLs),
		}
		field := func(name, a, b string) {
			if a != b {
				ch.Fields = append(ch.Fields, FieldChange{Field: name, Old: a, New: b})
			}
		}
		field("serviceArea", o.ServiceArea, n.ServiceArea)
		field("required", fmt.Sprint(o.Required), fmt.Sprint(n.Required))
		field("expressRoute", fmt.Sprint(o.ExpressRoute), fmt.Sprint(n.ExpressRoute))
		field("category", o.Category, n.Category)
		field("tcpPorts", normPorts(o.TCPPorts), normPorts(n.TCPPorts))
		field("udpPorts", normPorts(o.UDPPorts), normPorts(n.UDPPorts))
		if len(ch.URLsAdded)+len(ch.URLsRemoved)+len(ch.Fields) > 0 {
			d.Changed = append(d.Changed, ch)
		}
	}
	return d
}

// missingFrom returns the items of a that b lacks, in a's order.
func missingFrom(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// normPorts renders a validated port list canonically.
func normPorts(s string) string {
	p, _ := ParsePorts(s)
	return FormatPorts(p)
}
