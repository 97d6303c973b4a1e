package ncsi

import "testing"

// TestSystemRegistry reads this PC's real registry (wine's in CI): no
// error, and every probe has a host, customised or Windows' default.
func TestSystemRegistry(t *testing.T) {
	src, err := System()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Read(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range s.Web {
		if w.Host == "" || w.Content == "" {
			t.Errorf("web probe %+v", w)
		}
	}
	t.Logf("%+v", s)
}
