package messages

import (
	"embed"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/nicksnyder/go-i18n/v2/i18n"
	"go.yaml.in/yaml/v3"
	"golang.org/x/text/language"

	"github.com/m365tap/m365tap/rules"
)

//go:embed en.yaml ja.yaml
var files embed.FS

// Args are a message's named parameters.
type Args map[string]any

// tags maps the rules package's languages to BCP 47 tags.
var tags = map[rules.Language]language.Tag{rules.LangEN: language.English, rules.LangJA: language.Japanese}

type catalogue struct {
	bundle *i18n.Bundle
	// ids lists every message id by language, for the completeness test
	// and for Has.
	ids map[rules.Language]map[string]*i18n.Message
}

var (
	loadOnce sync.Once
	loaded   *catalogue
	loadErr  error
)

func load() (*catalogue, error) {
	loadOnce.Do(func() { loaded, loadErr = build() })
	return loaded, loadErr
}

func build() (*catalogue, error) {
	c := &catalogue{bundle: i18n.NewBundle(language.English), ids: map[rules.Language]map[string]*i18n.Message{}}
	c.bundle.RegisterUnmarshalFunc("yaml", yaml.Unmarshal)
	for lang, tag := range tags {
		name := lang.String() + ".yaml"
		data, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		mf, err := c.bundle.ParseMessageFileBytes(data, path.Base(name))
		if err != nil {
			return nil, fmt.Errorf("messages: %s: %w", name, err)
		}
		if mf.Tag != tag {
			return nil, fmt.Errorf("messages: %s: language %s, want %s", name, mf.Tag, tag)
		}
		c.ids[lang] = map[string]*i18n.Message{}
		for _, m := range mf.Messages {
			c.ids[lang][m.ID] = m
		}
		// The cause texts are rules' data: the tap writes them into every
		// event without going through this package.
		var extra []*i18n.Message
		for _, cause := range rules.Causes() {
			id := "cause." + cause.ID.String()
			extra = append(extra,
				&i18n.Message{ID: id + ".title", Other: cause.Title(lang)},
				&i18n.Message{ID: id + ".remedy", Other: cause.Remedy(lang)},
				&i18n.Message{ID: id + ".link", Other: cause.Link(lang)})
		}
		for _, m := range extra {
			if _, dup := c.ids[lang][m.ID]; dup {
				return nil, fmt.Errorf("messages: %s: %s is rules' data, not this file's", name, m.ID)
			}
			// Not templates: a brace in a remedy must print as it is.
			m.LeftDelim, m.RightDelim = "\x00{", "}\x00"
			c.ids[lang][m.ID] = m
		}
		if err := c.bundle.AddMessages(tag, extra...); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Printer renders messages in one language. The zero value is not usable;
// get one from For. A Printer is safe for concurrent use.
type Printer struct {
	lang rules.Language
	loc  *i18n.Localizer
}

var (
	printersMu sync.Mutex
	printers   = map[rules.Language]*Printer{}
)

// For returns the Printer of lang; an unknown language gives English. It
// panics when the embedded catalogue is broken, which the package's tests
// rule out for a built binary.
func For(lang rules.Language) *Printer {
	if _, ok := tags[lang]; !ok {
		lang = rules.LangEN
	}
	printersMu.Lock()
	defer printersMu.Unlock()
	if p := printers[lang]; p != nil {
		return p
	}
	c, err := load()
	if err != nil {
		panic(err)
	}
	p := &Printer{lang: lang, loc: i18n.NewLocalizer(c.bundle, tags[lang].String())}
	printers[lang] = p
	return p
}

// Lang is the Printer's language.
func (p *Printer) Lang() rules.Language { return p.lang }

// T renders message id with its named parameters. An id the catalogue
// lacks renders as "!(id)", visible in any golden output, rather than
// failing a report half written.
func (p *Printer) T(id string, args Args) string {
	s, err := p.loc.Localize(&i18n.LocalizeConfig{MessageID: id, TemplateData: map[string]any(args)})
	if err != nil && s == "" {
		return "!(" + id + ")"
	}
	return s
}

// N renders a message with plural forms for count, which is also passed
// as the parameter Count.
func (p *Printer) N(id string, count int, args Args) string {
	data := map[string]any{"Count": count}
	for k, v := range args {
		data[k] = v
	}
	s, err := p.loc.Localize(&i18n.LocalizeConfig{MessageID: id, TemplateData: data, PluralCount: count})
	if err != nil && s == "" {
		return "!(" + id + ")"
	}
	return s
}

// CauseTitle, CauseRemedy and CauseLink are a cause's texts, from rules.
func (p *Printer) CauseTitle(id string) string  { return p.T("cause."+id+".title", nil) }
func (p *Printer) CauseRemedy(id string) string { return p.T("cause."+id+".remedy", nil) }
func (p *Printer) CauseLink(id string) string   { return p.T("cause."+id+".link", nil) }

// Has reports whether the catalogue has id in every language.
func Has(id string) bool {
	c, err := load()
	if err != nil {
		return false
	}
	for lang := range tags {
		if c.ids[lang][id] == nil {
			return false
		}
	}
	return true
}

// List joins names for a sentence: the first max, then "and N more" in
// the printer's language. It is for lists of hosts and PCs, whose full
// form the JSON and HTML reports carry.
func (p *Printer) List(names []string, max int) string {
	if len(names) <= max || max <= 0 {
		return strings.Join(names, p.T("list.separator", nil))
	}
	return p.T("list.more", Args{"List": strings.Join(names[:max], p.T("list.separator", nil)), "More": len(names) - max})
}

// ids returns the sorted ids of lang, for tests.
func ids(lang rules.Language) []string {
	c, err := load()
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(c.ids[lang]))
	for id := range c.ids[lang] {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}
