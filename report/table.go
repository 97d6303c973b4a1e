package report

import (
	"strings"
	"unicode/utf8"

	"golang.org/x/text/width"
)

// table lays out rows in columns two spaces apart for a terminal. Unlike
// text/tabwriter it measures display width, so a Japanese header (two
// columns a character) stays above its values.
type table struct {
	rows   [][]string
	indent string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		switch width.LookupRune(r).Kind() {
		case width.EastAsianWide, width.EastAsianFullwidth:
			n += 2
		default:
			if r != utf8.RuneError {
				n++
			}
		}
	}
	return n
}

func (t *table) writeTo(b *strings.Builder) {
	var widths []int
	for _, row := range t.rows {
		for i, c := range row {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], displayWidth(c))
		}
	}
	for _, row := range t.rows {
		b.WriteString(t.indent)
		for i, c := range row {
			b.WriteString(c)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-displayWidth(c)+2))
			}
		}
		b.WriteString("\n")
	}
}
