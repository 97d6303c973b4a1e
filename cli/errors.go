package cli

import (
	"os"
	"strings"

	"github.com/m365tap/m365tap/messages"
	"github.com/m365tap/m365tap/rules"
)

// errorText is err as Main prints it: a configuration error in the
// language asked for (--language, or M365TAP_LOG_LANGUAGE), since the
// config that would say log.language is the thing that failed to load.
func errorText(err error, args []string) string {
	lang := rules.LangEN
	want := os.Getenv("M365TAP_LOG_LANGUAGE")
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--language="); ok {
			want = v
		} else if a == "--language" && i+1 < len(args) {
			want = args[i+1]
		}
	}
	if l, perr := rules.ParseLanguage(want); perr == nil {
		lang = l
	}
	if text, ok := messages.For(lang).ConfigError(err); ok {
		return text
	}
	return err.Error()
}
