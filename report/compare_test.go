package report

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m365tap/m365tap/rules"
)

// TestCompare sets two recorded sessions of one PC side by side: through a
// parent that blocks everything, then with the sign-in hosts bypassing it.
func TestCompare(t *testing.T) {
	blocked := readFiles(t, filepath.Join("testdata", "blocking-parent.log"))
	bypass := readFiles(t, filepath.Join("testdata", "bypass.log"))
	for _, a := range []*Aggregate{blocked, bypass} {
		a.Rules = embeddedSet(t)
	}
	cases := []struct {
		name       string
		a, b       *Aggregate
		lang       rules.Language
		conclusion string
		want       []string
	}{
		{"fixed", blocked, bypass, rules.LangEN, "compare.a_only", []string{
			"Fails in through the parent, works in bypassing it (3 hosts): the cause lies in what differs",
			"login.microsoftonline.com  fails (required-endpoint-unreachable)  works (-)     fails in the first, works in the second",
			"Causes seen only in through the parent: required-endpoint-unreachable",
		}},
		{"reverse, Japanese", bypass, blocked, rules.LangJA, "compare.b_only", []string{
			"through the parent では失敗しています (ホスト 3 件)",
			"1 つ目で成功し、2 つ目で失敗",
		}},
		{"the same session twice", blocked, blocked, rules.LangEN, "compare.both", []string{"Fails in both"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			la, lb := "through the parent", "bypassing it"
			if tc.a == bypass {
				la, lb = lb, la
			}
			c := Compare(tc.a.Summary(tc.lang), tc.b.Summary(tc.lang), la, lb)
			if c.ConclusionID != tc.conclusion {
				t.Errorf("conclusion %s: %s", c.ConclusionID, c.Conclusion)
			}
			var out bytes.Buffer
			if err := c.Write(&out, FormatText); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("lacks %q:\n%s", w, out.String())
				}
			}
			if strings.Contains(out.String(), "!(") {
				t.Errorf("a message is missing:\n%s", out.String())
			}
			for _, f := range []Format{FormatJSON, FormatMarkdown} {
				out.Reset()
				if err := c.Write(&out, f); err != nil || out.Len() == 0 {
					t.Errorf("%s: %v", f, err)
				}
			}
		})
	}
}

// TestCompareGolden renders the comparison of the blocking parent with
// the bypass in every format and both languages.
func TestCompareGolden(t *testing.T) {
	ext := map[Format]string{FormatText: "txt", FormatJSON: "json", FormatMarkdown: "md", FormatHTML: "html"}
	for _, lang := range []rules.Language{rules.LangEN, rules.LangJA} {
		c := fixedComparison(t, lang)
		for _, f := range []Format{FormatText, FormatJSON, FormatMarkdown, FormatHTML} {
			var b bytes.Buffer
			if err := c.Write(&b, f); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(b.String(), "!(") {
				t.Errorf("%s %s: a message is missing:\n%s", lang, f, b.String())
			}
			checkGolden(t, "compare-"+lang.String()+"."+ext[f]+".golden", b.Bytes())
		}
	}
}

// fixedComparison is the blocking parent (A) against the bypass (B): the
// sign-in hosts fail in A and work in B.
func fixedComparison(t *testing.T, lang rules.Language) *Comparison {
	t.Helper()
	blocked := readFiles(t, filepath.Join("testdata", "blocking-parent.log"))
	bypass := readFiles(t, filepath.Join("testdata", "bypass.log"))
	blocked.Rules, bypass.Rules = embeddedSet(t), embeddedSet(t)
	return Compare(blocked.Summary(lang), bypass.Summary(lang), "through the parent", "bypassing it")
}
