package ruleset

import (
	"github.com/m365tap/m365tap/ncsi"
	"github.com/m365tap/m365tap/rules"
)

// pcProbes are probe rules for what NCSI probes on the PC the tap runs on,
// when its administrators changed it (another probe host, path or text; a
// corporate website probe), so events and the report recognise the PC's
// real probe. Elsewhere than Windows there are none. A registry that
// cannot be read leaves the built-in NCSI rules only; `m365tap ncsi` shows
// the error.
func pcProbes() []rules.Spec {
	src, err := ncsi.System()
	if err != nil {
		return nil
	}
	s, err := ncsi.Read(src)
	if err != nil {
		return nil
	}
	return s.ProbeSpecs()
}
