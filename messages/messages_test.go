package messages

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/rules"
)

var paramRE = regexp.MustCompile(`\{\{[^}]*?\.([A-Za-z]+)[^}]*\}\}`)

func params(s string) []string {
	var out []string
	for _, m := range paramRE.FindAllStringSubmatch(s, -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return out
}

// TestEveryIDInEveryLanguage: a text missing in one language, or whose
// languages disagree on its parameters, fails here rather than printing
// English in a Japanese report.
func TestEveryIDInEveryLanguage(t *testing.T) {
	c, err := load()
	if err != nil {
		t.Fatal(err)
	}
	en, ja := ids(rules.LangEN), ids(rules.LangJA)
	if len(en) < 50 {
		t.Fatalf("only %d English messages", len(en))
	}
	for _, id := range en {
		if !slices.Contains(ja, id) {
			t.Errorf("%s: no Japanese text", id)
		}
	}
	for _, id := range ja {
		if !slices.Contains(en, id) {
			t.Errorf("%s: no English text", id)
		}
	}
	for _, id := range en {
		e, j := c.ids[rules.LangEN][id], c.ids[rules.LangJA][id]
		if e == nil || j == nil {
			continue
		}
		if e.Other == "" || j.Other == "" {
			t.Errorf("%s: an empty text", id)
		}
		if e.One != "" && !slices.Equal(params(e.One), params(e.Other)) {
			t.Errorf("%s: English forms differ in parameters", id)
		}
		if pe, pj := params(e.Other), params(j.Other); !slices.Equal(pe, pj) {
			t.Errorf("%s: parameters %v in English, %v in Japanese", id, pe, pj)
		}
		if !strings.HasPrefix(id, "cause.") && !sameOnPurpose[id] && e.Other == j.Other && !isIdentifier(e.Other) {
			t.Errorf("%s: the Japanese text is the English one: %q", id, e.Other)
		}
	}
}

// sameOnPurpose are names, the same in both languages.
var sameOnPurpose = map[string]bool{"html.lang": true, "col.ncsi": true, "settings.expressroute": true}

// isIdentifier: texts that are the same in both languages on purpose.
func isIdentifier(s string) bool {
	return strings.Trim(s, "{}.A-Za-z0-9 ()/_:,") == "" && !strings.Contains(s, "  ") && len(strings.Fields(s)) <= 2
}

// TestIDsUsedExist: every message id the code names literally is in the
// catalogue, in both languages. Ids built from a prefix and a value are
// walked here from the values they can take.
func TestIDsUsedExist(t *testing.T) {
	callRE := regexp.MustCompile(`\.(?:T|N)\("([a-z_.0-9]+)"`)
	var files []string
	for _, dir := range []string{"../report", "../cli"} {
		fs, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		files = append(files, fs...)
	}
	seen := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range callRE.FindAllStringSubmatch(string(data), -1) {
			if strings.HasSuffix(m[1], ".") {
				continue // a prefix: the dynamic ids below
			}
			seen++
			if !Has(m[1]) {
				t.Errorf("%s: message %q is not in the catalogue", f, m[1])
			}
		}
	}
	if seen < 40 {
		t.Errorf("only %d message uses found: the pattern no longer matches the code", seen)
	}
	dynamic := []string{"scope.all_pcs", "scope.some_pcs", "scope.single_pc", "scope.one_pc", "scope.tap",
		"route.direct", "route.parent", "settings.er.true", "settings.er.false",
		"compare.none_fail", "compare.a_only", "compare.b_only", "compare.both", "compare.mixed"}
	for _, s := range []string{"works", "fails", "intermittent", "unseen"} {
		dynamic = append(dynamic, "compare.state."+s)
	}
	for _, c := range []string{"fixed", "broken", "still_failing", "same", "other"} {
		dynamic = append(dynamic, "compare.change."+c)
	}
	for _, c := range rules.Causes() {
		for _, part := range []string{"title", "remedy", "link"} {
			dynamic = append(dynamic, "cause."+c.ID.String()+"."+part)
		}
	}
	for _, id := range dynamic {
		if !Has(id) {
			t.Errorf("%s: not in the catalogue", id)
		}
	}
}

// TestJapaneseRegister: the Japanese reads as Microsoft Japan's support
// articles do: polite forms, the service area's full name, the endpoint
// list's own words, ja-jp pages.
func TestJapaneseRegister(t *testing.T) {
	c, err := load()
	if err != nil {
		t.Fatal(err)
	}
	polite := regexp.MustCompile(`(ます|です|ください|ません|でした|ました|ましょう)[)）」]*$`)
	forbidden := []*regexp.Regexp{
		regexp.MustCompile(`Microsoft 365 Common[^ ]|Microsoft 365 Common $|Microsoft 365 Common [^お]`), // the full name: «Microsoft 365 Common および Office Online»
		regexp.MustCompile(`状態 ?200|ステータス 200`),                                                         // «HTTP ステータス コード 200»
		regexp.MustCompile(`ExpressRoute 非対応`),                                                          // «ExpressRoute の対象外 (一覧で「いいえ」)»
		regexp.MustCompile(`確認してください`),                                                                  // the articles write «ご確認ください»
		regexp.MustCompile(`learn\.microsoft\.com/(en-us/)?microsoft-365`),                              // the ja-jp pages
	}
	for id, m := range c.ids[rules.LangJA] {
		text := m.Other
		for _, re := range forbidden {
			for _, hit := range re.FindAllString(text, -1) {
				t.Errorf("%s: %q is not the register of the articles: %s", id, hit, text)
			}
		}
		// Every full sentence ends politely; labels (no 。) are not sentences.
		sentences := strings.Split(text, "。")
		if !strings.HasSuffix(strings.TrimSpace(text), "。") {
			sentences = sentences[:len(sentences)-1]
		}
		for _, sentence := range sentences {
			// A closing aside in brackets does not end the sentence.
			sentence = strings.TrimSpace(trailingAside.ReplaceAllString(strings.TrimSpace(sentence), ""))
			if sentence != "" && !polite.MatchString(sentence) && !strings.HasSuffix(sentence, "こと") {
				t.Errorf("%s: sentence not in the polite form: %q", id, sentence)
			}
		}
	}
	for _, want := range []string{"Microsoft 365 Common および Office Online", "HTTP ステータス コード 200", "ExpressRoute の対象外 (一覧で「いいえ」)"} {
		found := false
		for _, m := range c.ids[rules.LangJA] {
			found = found || strings.Contains(m.Other, want)
		}
		if !found {
			t.Errorf("no Japanese text says %q", want)
		}
	}
}

var trailingAside = regexp.MustCompile(`\s*\([^()]*\)$`)

func TestPrinter(t *testing.T) {
	en, ja := For(rules.LangEN), For(rules.LangJA)
	if For(rules.Language(9)) != en {
		t.Error("an unknown language does not give English")
	}
	if got := en.T("list.more", Args{"List": "a, b", "More": 3}); got != "a, b and 3 more" {
		t.Errorf("English list: %q", got)
	}
	if got := ja.List([]string{"a", "b", "c"}, 2); got != "a、b ほか 1 件" {
		t.Errorf("Japanese list: %q", got)
	}
	if got := en.T("no.such.id", nil); got != "!(no.such.id)" {
		t.Errorf("missing id: %q", got)
	}
	c := rules.CauseByID(rules.CauseExpressRoutePath)
	if ja.CauseTitle(c.ID.String()) != c.Title(rules.LangJA) || ja.CauseLink(c.ID.String()) != c.Link(rules.LangJA) {
		t.Error("cause texts are not rules' own")
	}
}

// TestConfigError: the commonest config errors read in the reader's
// language, each setting on its line, a password still masked.
func TestConfigError(t *testing.T) {
	_, badValues := config.Load(config.LoadOptions{File: writeConfig(t, "log:\n  language: fr\nparent:\n  url: \"http://alice:s3cret@proxy example:3128\"\n"), Env: []string{}})
	_, unknownKey := config.Load(config.LoadOptions{File: writeConfig(t, "listen_addr: x\n"), Env: []string{}})
	if badValues == nil || unknownKey == nil {
		t.Fatal("bad config accepted")
	}
	for _, tc := range []struct {
		err  error
		want []string
	}{
		{badValues, []string{"設定エラー: log.language の値 \"fr\" は使用できません。使用できる値: ", "設定エラー: parent.url の値 "}},
		{unknownKey, []string{"設定エラー: listen_addr という設定キーはありません。"}},
	} {
		ja, ok := For(rules.LangJA).ConfigError(tc.err)
		if !ok {
			t.Fatalf("not a config error: %v", tc.err)
		}
		for _, want := range tc.want {
			if !strings.Contains(ja, want) {
				t.Errorf("lacks %q:\n%s", want, ja)
			}
		}
		if strings.Contains(ja, "s3cret") {
			t.Errorf("password shown:\n%s", ja)
		}
		en, _ := For(rules.LangEN).ConfigError(tc.err)
		if strings.Count(en, "\n") != strings.Count(ja, "\n") || !strings.HasPrefix(en, "config: ") {
			t.Errorf("English:\n%s", en)
		}
	}
	if _, ok := For(rules.LangEN).ConfigError(errors.New("other")); ok {
		t.Error("a plain error taken for a config error")
	}
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m365tap.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
