package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// DefaultFile is the file Load reads when no file is named and it exists in
// LoadOptions.Dir.
const DefaultFile = "m365tap.yaml"

// EnvPrefix starts every environment variable Load reads: M365TAP_PARENT_URL
// sets parent.url, M365TAP_TIMEOUTS_RESPONSE_HEADER sets
// timeouts.response_header.
const EnvPrefix = "M365TAP_"

// LoadOptions says where Load looks. The zero value reads ./m365tap.yaml if
// present and the process environment, with no flags.
type LoadOptions struct {
	// File is the YAML file to read (--config). Empty means DefaultFile in
	// Dir if it exists, else no file; a named file that is missing is an error.
	File string
	// Flags are the parsed command-line flags; only those registered by
	// BindFlags are read, and only when set on the command line. Nil means none.
	Flags *pflag.FlagSet
	// Env is the environment as KEY=VALUE pairs. Nil means os.Environ(); an
	// empty non-nil slice ignores the environment (config check does this).
	Env []string
	// Dir is where DefaultFile is looked for. Empty means the working directory.
	Dir string
}

// flagKeys maps each common flag to its key. Order is the order of --help.
var flagKeys = []struct{ flag, key string }{
	{"listen", "listen"},
	{"parent", "parent.url"},
	{"probes-direct", "probes.direct"},
	{"dns-server", "dns.servers"},
	{"host", "hosts"},
	{"log-file", "log.file"},
	{"log-level", "log.level"},
	{"log-format", "log.format"},
	{"express-route", "network.express_route"},
	{"language", "log.language"},
}

// BindFlags registers the flags for the common keys on fs. Call it once per
// flag set (pflag panics on a redefinition); pass the parsed set to Load.
func BindFlags(fs *pflag.FlagSet) {
	d := Default()
	fs.String("listen", d.Listen, "listen address host:port; anything but loopback needs access.allow (listen)")
	fs.String("parent", d.Parent.URL, "parent proxy http://[user:pass@]host:port; prefer M365TAP_PARENT_URL for credentials, which ps would show (parent.url)")
	fs.Bool("probes-direct", d.Probes.Direct, "send NCSI probe traffic direct even with a parent (probes.direct)")
	fs.StringSlice("dns-server", d.DNS.Servers, "DNS server IP:port, repeatable or comma-separated; none means the system resolver (dns.servers)")
	fs.StringArray("host", d.Hosts, "NAME=IP override consulted before DNS, repeatable (hosts)")
	fs.String("log-file", d.Log.File, "also write events to this rotating file (log.file)")
	fs.String("log-level", d.Log.Level, "minimum level: debug, info, warn or error (log.level)")
	fs.String("log-format", d.Log.Format, "event format: json, ecs or cef (log.format)")
	fs.Bool("express-route", d.Network.ExpressRoute, "the customer uses Azure ExpressRoute (network.express_route)")
	fs.String("language", d.Log.Language, "language of cause titles and remedies: en or ja (log.language)")
}

// Load builds the effective Config: Default, then the YAML file, then
// M365TAP_* variables from the environment, then flags set on the command
// line; each later source wins. It fails on unknown keys, mistyped values and
// anything Validate rejects, returning every problem at once.
func Load(opts LoadOptions) (*Config, error) {
	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	v := viper.New()
	// Every key gets a default so that it exists for Unmarshal whatever
	// source sets it (spf13/viper#761).
	keys := leaves(reflect.ValueOf(Default()), "")
	for _, l := range keys {
		v.SetDefault(l.key, l.val.Interface())
	}

	path, err := configPath(opts)
	if err != nil {
		return nil, err
	}
	if path != "" {
		m, err := readYAML(path)
		if err != nil {
			return nil, err
		}
		if err := v.MergeConfigMap(m); err != nil {
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
	}

	// The environment is merged into the file layer rather than read with
	// AutomaticEnv: viper can only read the process environment, and Load
	// must honour opts.Env. Merging keeps viper's order (flag > file layer >
	// default), which v.Set would break by beating the flags.
	envMap, envErrs := fromEnv(env, keys)
	if len(envMap) > 0 {
		if err := v.MergeConfigMap(envMap); err != nil {
			return nil, fmt.Errorf("config: environment: %w", err)
		}
	}

	if opts.Flags != nil {
		for _, fk := range flagKeys {
			if f := opts.Flags.Lookup(fk.flag); f != nil {
				if err := v.BindPFlag(fk.key, f); err != nil {
					return nil, fmt.Errorf("config: flag --%s: %w", fk.flag, err)
				}
			}
		}
	}

	var c Config
	err = v.UnmarshalExact(&c, viper.DecodeHook(strictHook), func(dc *mapstructure.DecoderConfig) {
		// YAML has real types: "yes" is not a bool and a string is not a
		// list. The environment, which has only strings, is converted per
		// key by fromEnv before it gets here.
		dc.WeaklyTypedInput = false
	})
	if errs := append(envErrs, decodeErrors(err)...); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	nilEmptyLists(reflect.ValueOf(&c).Elem())
	c.source = path
	if c.Parent.FromEnvironment && c.Parent.URL == "" {
		c.envProxyVar, c.envProxy = proxyFromEnv(env)
	}
	c.captureEnv(env)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func configPath(opts LoadOptions) (string, error) {
	if opts.File != "" {
		return opts.File, nil
	}
	path := filepath.Join(opts.Dir, DefaultFile)
	if opts.Dir == "" {
		path = DefaultFile
	}
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return path, nil
	case errors.Is(err, fs.ErrNotExist):
		return "", nil
	default:
		return "", fmt.Errorf("config: %w", err)
	}
}

// readYAML parses the file itself rather than through viper so that every
// error names the path, and so that any extension (or none) is read as YAML.
func readYAML(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	return m, nil
}

// leaf is one settable key of Config with its Go type and value.
type leaf struct {
	key string
	val reflect.Value
}

// leaves lists the keys of a Config value in field order. Structs are walked
// into; everything else, lists included, is a leaf.
func leaves(v reflect.Value, prefix string) []leaf {
	var out []leaf
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		key := f.Tag.Get("mapstructure")
		if prefix != "" {
			key = prefix + "." + key
		}
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct {
			out = append(out, leaves(fv, key)...)
			continue
		}
		out = append(out, leaf{key: key, val: fv})
	}
	return out
}

// nilEmptyLists makes `key: []` and an absent key the same Config, so that
// a file spelling out the defaults loads equal to Default().
func nilEmptyLists(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				nilEmptyLists(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.SetZero()
		}
		for i := range v.Len() {
			nilEmptyLists(v.Index(i))
		}
	}
}

// envName is the variable that sets key: parent.url -> M365TAP_PARENT_URL.
func envName(key string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

var durationType = reflect.TypeFor[time.Duration]()

// fromEnv turns the M365TAP_* variables in env into a nested map for viper,
// converting each string to its key's type: lists are split on commas.
// Unknown M365TAP_* variables are ignored, not rejected: Kubernetes injects
// M365TAP_PORT, M365TAP_SERVICE_HOST and friends for a Service named m365tap.
func fromEnv(env []string, keys []leaf) (map[string]any, []error) {
	byName := make(map[string]leaf, len(keys))
	for _, l := range keys {
		byName[envName(l.key)] = l
	}
	m := map[string]any{}
	var errs []error
	for _, kv := range env {
		name, raw, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		l, ok := byName[name]
		if !ok {
			continue
		}
		val, err := envValue(l, raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		setNested(m, l.key, val)
	}
	return m, errs
}

func envValue(l leaf, raw string) (any, error) {
	t := l.val.Type()
	switch {
	case t == durationType:
		return raw, nil // strictHook parses it, with the same message as a file's
	case t.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return nil, fieldError(l.key, raw, allowBool)
		}
		return b, nil
	case t.Kind() == reflect.Int:
		n, err := strconv.Atoi(raw)
		if err != nil {
			return nil, fieldError(l.key, raw, allowInt)
		}
		return n, nil
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Int:
		var ns []int
		for _, s := range splitList(raw) {
			n, err := strconv.Atoi(s)
			if err != nil {
				return nil, fieldError(l.key, raw, "want a comma-separated list of whole numbers")
			}
			ns = append(ns, n)
		}
		return ns, nil
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return splitList(raw), nil
	}
	// Strings, and rules.user, whose list of objects has no environment
	// form: strictHook rejects a string there with its usual message.
	return raw, nil
}

// splitList splits a comma-separated environment value; "" is the empty list,
// so M365TAP_DNS_SERVERS= clears the servers set in a file.
func splitList(raw string) []string {
	out := []string{}
	for s := range strings.SplitSeq(raw, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func setNested(m map[string]any, key string, val any) {
	parts := strings.Split(key, ".")
	for _, p := range parts[:len(parts)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[p] = sub
		}
		m = sub
	}
	m[parts[len(parts)-1]] = val
}

// proxyFromEnv returns the parent proxy the environment names, in the order
// Go's net/http uses for https requests: a tap mostly carries CONNECT.
func proxyFromEnv(env []string) (name, value string) {
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		if v := vars[k]; v != "" {
			return k, v
		}
	}
	return "", ""
}
