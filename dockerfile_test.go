package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/m365tap/m365tap/config"
)

// TestDockerfile checks what podman and a published port need of the
// image: every base image is named in full (registry, namespace, name and
// tag; podman and buildah refuse short names), the version is stamped, and
// the image's environment is a configuration the tap accepts, listening on
// every address with access.allow holding interfaces (the container's own
// networks and loopback of both families, where a published port's
// connections come from under Docker and podman).
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(text, -1)
	if len(froms) == 0 {
		t.Fatal("no FROM line")
	}
	for _, m := range froms {
		ref := m[1]
		registry, rest, ok := strings.Cut(ref, "/")
		if !ok || !(strings.ContainsAny(registry, ".:") || registry == "localhost") || !strings.Contains(rest, "/") {
			t.Errorf("FROM %s: not a fully qualified name (registry/namespace/name)", ref)
		}
		if name := ref[strings.LastIndexByte(ref, '/')+1:]; !strings.Contains(name, ":") && !strings.Contains(name, "@") {
			t.Errorf("FROM %s: no tag or digest", ref)
		}
	}
	if !strings.Contains(text, "-X github.com/m365tap/m365tap/cli.Version=") {
		t.Error("the build does not stamp cli.Version")
	}
	var env []string
	for _, m := range regexp.MustCompile(`(M365TAP_[A-Z_]+)=(\S+)`).FindAllStringSubmatch(text, -1) {
		env = append(env, m[1]+"="+m[2])
	}
	cfg, err := config.Load(config.LoadOptions{Env: env, Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("the image's environment %q: %v", env, err)
	}
	if cfg.Listen != ":8080" {
		t.Errorf("listen %q, want :8080 (every address of both families)", cfg.Listen)
	}
	if !cfg.AllowInterfaces() {
		t.Errorf("access.allow %q does not hold %s", cfg.Access.Allow, config.AllowInterfacesEntry)
	}
}
