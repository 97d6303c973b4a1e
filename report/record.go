package report

import (
	"time"

	"go.uber.org/zap/zapcore"
)

// Record is the part of one log record the report reads. Field names follow
// docs/events.md.
type Record struct {
	Msg         string    `json:"msg"`
	Time        time.Time `json:"ts"`
	Method      string    `json:"method"`
	Host        string    `json:"host"`
	Port        int       `json:"port"`
	Route       string    `json:"route"`
	Outcome     string    `json:"outcome"`
	Class       string    `json:"class"`
	Error       string    `json:"error"`
	RuleID      string    `json:"rule_id"`
	RuleSource  string    `json:"rule_source"`
	ServiceArea string    `json:"service_area"`
	Required    bool      `json:"required"`
	Probe       bool      `json:"probe"`
	ProbeCheck  string    `json:"probe_check"`
	CauseID     string    `json:"cause_id"`
	// Client is the PC's address and port; empty for the active probe.
	Client  string `json:"client"`
	DestIP  string `json:"dest_ip"`
	RuleIDs string `json:"rule_ids"`
	// TLSAlert, TLSIssuer and TLSSubject say what a failed handshake
	// showed: the client's alert, the certificate it was shown.
	TLSAlert   string `json:"tls_alert"`
	TLSIssuer  string `json:"tls_issuer"`
	TLSSubject string `json:"tls_subject"`
	// TLSTrusted is the active probe's tls_trusted: whether the chain it
	// was shown verifies against the tap machine's roots; nil when unknown.
	TLSTrusted *bool `json:"tls_trusted"`
	// Listen, Version, Parent and RulesVersion are the start record's.
	Listen       string `json:"listen"`
	Version      string `json:"version"`
	Parent       string `json:"parent"`
	RulesVersion string `json:"rules_version"`
	// ParentAuth is the exchange's parent_auth: "tap" when the tap lent
	// its own credentials (parent.auth.clients).
	ParentAuth string `json:"parent_auth"`
	// PAC and PACSHA256 name the PAC of a pac_loaded or pac_failed record;
	// PACResult is what it answered for an exchange.
	PAC       string `json:"pac"`
	PACSHA256 string `json:"pac_sha256"`
	PACResult string `json:"pac_result"`
	// ExpressRoute is the start record's network.express_route.
	ExpressRoute *bool `json:"express_route"`
}

// picker is a zapcore.ObjectEncoder that keeps only the keys of Record and
// drops the rest, so the Collector learns an event's facts from the same
// MarshalLogObject call shape the JSON encoder uses, without encoding or
// parsing anything.
type picker struct {
	rec Record
	// nested counts open namespaces; keys inside one are not the event's.
	nested int
}

func (p *picker) AddString(k, v string) {
	if p.nested > 0 {
		return
	}
	r := &p.rec
	switch k {
	case "method":
		r.Method = v
	case "host":
		r.Host = v
	case "route":
		r.Route = v
	case "outcome":
		r.Outcome = v
	case "class":
		r.Class = v
	case "error":
		r.Error = v
	case "rule_id":
		r.RuleID = v
	case "rule_source":
		r.RuleSource = v
	case "service_area":
		r.ServiceArea = v
	case "probe_check":
		r.ProbeCheck = v
	case "cause_id":
		r.CauseID = v
	case "listen":
		r.Listen = v
	case "client":
		r.Client = v
	case "dest_ip":
		r.DestIP = v
	case "rule_ids":
		r.RuleIDs = v
	case "tls_alert":
		r.TLSAlert = v
	case "tls_issuer":
		r.TLSIssuer = v
	case "tls_subject":
		r.TLSSubject = v
	case "version":
		r.Version = v
	case "parent":
		r.Parent = v
	case "parent_auth":
		r.ParentAuth = v
	case "pac":
		r.PAC = v
	case "pac_sha256":
		r.PACSHA256 = v
	case "pac_result":
		r.PACResult = v
	case "rules_version":
		r.RulesVersion = v
	}
}

func (p *picker) AddBool(k string, v bool) {
	if p.nested > 0 {
		return
	}
	switch k {
	case "required":
		p.rec.Required = v
	case "probe":
		p.rec.Probe = v
	case "tls_trusted":
		// Only the active probe's TLS checks carry it: the copy costs
		// nothing to other events.
		tt := v
		p.rec.TLSTrusted = &tt
	case "express_route":
		// The exchange's express_route is its rule's flag; only the start
		// record's is the network's.
		if p.rec.Msg == "start" {
			// A copy taken here, so that v itself does not escape and
			// every other boolean costs no allocation.
			er := v
			p.rec.ExpressRoute = &er
		}
	}
}

func (p *picker) AddInt64(k string, v int64) {
	if p.nested == 0 && k == "port" {
		p.rec.Port = int(v)
	}
}

func (p *picker) AddInt(k string, v int)     { p.AddInt64(k, int64(v)) }
func (p *picker) AddInt32(k string, v int32) { p.AddInt64(k, int64(v)) }
func (p *picker) AddInt16(k string, v int16) { p.AddInt64(k, int64(v)) }
func (p *picker) AddInt8(k string, v int8)   { p.AddInt64(k, int64(v)) }
func (p *picker) AddUint64(k string, v uint64) {
	if v <= 1<<31 {
		p.AddInt64(k, int64(v))
	}
}
func (p *picker) AddUint(k string, v uint)     { p.AddUint64(k, uint64(v)) }
func (p *picker) AddUint32(k string, v uint32) { p.AddInt64(k, int64(v)) }
func (p *picker) AddUint16(k string, v uint16) { p.AddInt64(k, int64(v)) }
func (p *picker) AddUint8(k string, v uint8)   { p.AddInt64(k, int64(v)) }

// The rest carry nothing the report reads.
func (p *picker) AddArray(string, zapcore.ArrayMarshaler) error   { return nil }
func (p *picker) AddObject(string, zapcore.ObjectMarshaler) error { return nil }
func (p *picker) AddBinary(string, []byte)                        {}
func (p *picker) AddByteString(string, []byte)                    {}
func (p *picker) AddComplex128(string, complex128)                {}
func (p *picker) AddComplex64(string, complex64)                  {}
func (p *picker) AddDuration(string, time.Duration)               {}
func (p *picker) AddFloat64(string, float64)                      {}
func (p *picker) AddFloat32(string, float32)                      {}
func (p *picker) AddTime(string, time.Time)                       {}
func (p *picker) AddUintptr(string, uintptr)                      {}
func (p *picker) AddReflected(string, any) error                  { return nil }
func (p *picker) OpenNamespace(string)                            { p.nested++ }

var _ zapcore.ObjectEncoder = (*picker)(nil)
