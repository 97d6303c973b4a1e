// Command harness measures m365tap against no proxy (the floor), bare
// goproxy, Squid and tinyproxy on loopback, with one load generator, runs
// interleaved target by target and repeated, and prints medians and ratios.
// bench/run.sh builds everything and runs it; see bench/RESULTS.md.
//
//	harness -mode quick|full -m365tap BIN -bareproxy BIN -conf bench/ [-out FILE]
//	harness origin -lifetime 15m   (the origin process the harness starts)
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// mode is how long and how often each workload runs.
type mode struct {
	name       string
	reps       int
	warm, dur  time.Duration
	memCounts  []int
	largeBytes int64
}

var modes = map[string]mode{
	"quick": {name: "quick", reps: 2, warm: 150 * time.Millisecond, dur: 700 * time.Millisecond, memCounts: []int{1000}, largeBytes: 64 << 20},
	// 10,000 idle tunnels cannot be reached here: this sandbox caps a
	// process at 20,000 descriptors (a hard RLIMIT_NOFILE that root cannot
	// raise) and a proxy holds two sockets per tunnel, plus its listeners
	// and logs. goproxy and the other Go proxies that wait inside
	// splice(2) hold 6 per idle tunnel (the 2 pipes of the 2 waiting
	// splices) and stop near 3,330; m365tap waits outside splice and holds
	// 2. 3,200 is what every proxy reaches, so it is where they are
	// compared; 9,800 is tried after it for those that can.
	"full": {name: "full", reps: 5, warm: 300 * time.Millisecond, dur: 1500 * time.Millisecond, memCounts: []int{1000, 3200, 9800}, largeBytes: 64 << 20},
}

// modeWarm and modeDur are the warm-up and measured time of one run; the
// profile mode lengthens modeDur.
var modeWarm, modeDur time.Duration

// workload is one row group of the report.
type workload struct {
	id, title string
	unit      string // "req/s", "tunnels/s", "MB/s"
	latency   bool
	run       func(t target) sample
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "origin" {
		fs := flag.NewFlagSet("origin", flag.ExitOnError)
		lifetime := fs.Duration("lifetime", 15*time.Minute, "exit after this long")
		_ = fs.Parse(os.Args[2:])
		if err := runOrigin(*lifetime); err != nil {
			fmt.Fprintln(os.Stderr, "origin:", err)
			os.Exit(1)
		}
		return
	}
	modeName := flag.String("mode", "quick", "quick (under 2 minutes) or full (under 10)")
	tapBin := flag.String("m365tap", "", "m365tap binary")
	bareBin := flag.String("bareproxy", "", "bench/bareproxy binary")
	confDir := flag.String("conf", "bench", "directory with squid.conf.in and tinyproxy.conf.in")
	only := flag.String("only", "", "comma-separated targets to run (default: all found)")
	out := flag.String("out", "", "also write the report (Markdown) here")
	maxTunnels := flag.Int("tunnels", 0, "override the largest idle-tunnel count")
	reps := flag.Int("reps", 0, "override the mode's repetitions")
	profile := flag.String("profile", "", "instead of the report: run these workloads (comma-separated ids) once per proxy under perf record, profiles to -perf-dir")
	profileSecs := flag.Duration("profile-time", 8*time.Second, "how long each profiled run lasts")
	perfDir := flag.String("perf-dir", "", "where perf.data files go in -profile mode")
	onlyWorkloads := flag.String("workloads", "", "comma-separated workload ids to run (default all; \"none\": memory only)")
	built := flag.String("built", "", "what the m365tap binary was built from, for the report")
	tapEnv := flag.String("tap-env", "", "extra environment for m365tap, comma-separated KEY=VALUE (e.g. GOGC=400)")
	tapB := flag.String("tap-b", "", "a second m365tap binary, run as another target (A/B of a change)")
	tapBEnv := flag.String("tap-b-env", "", "extra environment for the -tap-b target")
	tapBName := flag.String("tap-b-name", "m365tap-B", "name of the -tap-b target")
	keep := flag.Bool("keep", false, "keep the work directory (proxy logs, event log)")
	doMemory := flag.Bool("memory", true, "measure idle and idle-tunnel memory")
	profiler := flag.String("profiler", "perf", "perf (CPU samples) or strace (system call counts) in -profile mode")
	flag.Parse()
	m, ok := modes[*modeName]
	if !ok {
		fail(errors.New("mode must be quick or full"))
	}
	if *reps > 0 {
		m.reps = *reps
	}
	if *maxTunnels > 0 {
		m.memCounts[len(m.memCounts)-1] = *maxTunnels
	}
	confAbs, err := filepath.Abs(*confDir)
	if err != nil {
		fail(err)
	}
	dir, err := os.MkdirTemp("", "m365tap-bench-")
	if err != nil {
		fail(err)
	}
	// Squid and tinyproxy drop to an unprivileged user and write here.
	_ = os.Chmod(dir, 0o777)
	lifetime := 14 * time.Minute
	started := time.Now()
	rep := &report{mode: m, started: started, dir: dir}
	rep.facts = machineFacts()
	if *built != "" {
		rep.facts = append(rep.facts, "m365tap built from: "+*built)
	}

	origin, info, originStdin, err := startOrigin(dir, lifetime)
	if err != nil {
		fail(err)
	}
	originPID := origin.Process.Pid
	var procs, starting []*proxyProc
	cleanup := func() {
		for _, p := range procs {
			p.stop()
		}
		originStdin.Close()
		_ = origin.Wait()
	}
	atExit = func() {
		for _, p := range starting {
			p.stop()
		}
		cleanup()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "harness: interrupted, stopping the proxies")
		atExit()
		os.Exit(130)
	}()

	want := map[string]bool{}
	for _, n := range strings.Split(*only, ",") {
		if n = strings.TrimSpace(n); n != "" {
			want[n] = true
		}
	}
	wanted := func(n string) bool { return len(want) == 0 || want[n] }
	for _, p := range []*proxyProc{
		goproxyProc(*bareBin, dir, lifetime),
		tapProc("m365tap", *tapBin, splitEnv(*tapEnv), dir, lifetime, info),
		tapProc(*tapBName, *tapB, splitEnv(*tapBEnv), dir, lifetime, info),
		squidProc(confAbs, dir, lifetime),
		tinyproxyProc(confAbs, dir, lifetime),
	} {
		if p == nil || !wanted(p.name) {
			continue
		}
		if err := p.run(); err != nil {
			rep.notes = append(rep.notes, p.name+": not started: "+err.Error())
			continue
		}
		starting = append(starting, p)
		if err := waitReady(p, info); err != nil {
			rep.notes = append(rep.notes, p.name+": left out: "+err.Error())
			p.stop()
			continue
		}
		procs = append(procs, p)
	}
	// Memory first, while the machine holds no TIME_WAIT sockets from the
	// load: each proxy fresh, alone, then restarted for the load.
	rep.mem = map[string]memResult{}
	for _, p := range procs {
		if !*doMemory || *profile != "" {
			break
		}
		res := runMemory(p, info, m.memCounts)
		rep.mem[p.name] = res
		fmt.Fprintf(os.Stderr, "  memory %-9s idle %d KiB %v %s\n", p.name, res.idleKiB, res.at, res.err)
		p.stop()
		err := p.run()
		if err == nil {
			err = waitReady(p, info)
		}
		if err != nil {
			rep.notes = append(rep.notes, p.name+": restart after the memory test failed: "+err.Error())
		}
	}
	targets := []target{}
	if wanted("direct") {
		targets = append(targets, target{name: "direct"})
	}
	for _, p := range procs {
		targets = append(targets, target{name: p.name, proxy: p})
	}
	rep.targets = targets
	fmt.Fprintf(os.Stderr, "harness: %s mode, targets %s, load average %s\n", m.name, names(targets), loadAvg())

	modeWarm, modeDur = m.warm, m.dur
	large := "/large?n=" + strconv.FormatInt(m.largeBytes, 10)
	workloads := []workload{
		{id: "plain32", title: "plain HTTP, 128 B responses, keep-alive, 32 clients", unit: "req/s", latency: true,
			run: func(t target) sample { return runPlain(t, info, originPID, 32, "/small", modeWarm, modeDur) }},
		{id: "plain256", title: "plain HTTP, 128 B responses, keep-alive, 256 clients", unit: "req/s", latency: true,
			run: func(t target) sample { return runPlain(t, info, originPID, 256, "/small", modeWarm, modeDur) }},
		{id: "tls", title: "CONNECT + TLS 1.3 handshake (ECDSA P-256) + one GET + close, 32 clients", unit: "tunnels/s", latency: true,
			run: func(t target) sample { return runTunnels(t, info, originPID, 32, modeWarm, modeDur) }},
		{id: "bulk1", title: "bulk through 1 tunnel (CONNECT to a TCP source)", unit: "MB/s",
			run: func(t target) sample { return runBulk(t, info, originPID, 1, modeWarm, modeDur) }},
		{id: "bulk8", title: "bulk through 8 tunnels", unit: "MB/s",
			run: func(t target) sample { return runBulk(t, info, originPID, 8, modeWarm, modeDur) }},
		{id: "large", title: "large plain-HTTP bodies (" + strconv.FormatInt(m.largeBytes>>20, 10) + " MiB, Content-Length), 1 client", unit: "MB/s",
			run: func(t target) sample { return runLarge(t, info, originPID, 1, large, modeWarm, modeDur) }},
	}
	if m.name == "full" {
		workloads = append(workloads, workload{id: "large4", title: "large plain-HTTP bodies, 4 clients", unit: "MB/s",
			run: func(t target) sample { return runLarge(t, info, originPID, 4, large, modeWarm, modeDur) }})
	}
	if *profile != "" {
		runProfiles(workloads, targets, strings.Split(*profile, ","), *profileSecs, *perfDir, *profiler, m)
		cleanup()
		return
	}
	if *onlyWorkloads != "" {
		keep := map[string]bool{}
		for _, id := range strings.Split(*onlyWorkloads, ",") {
			keep[strings.TrimSpace(id)] = true
		}
		var kept []workload
		for _, wl := range workloads {
			if keep[wl.id] {
				kept = append(kept, wl)
			}
		}
		workloads = kept
	}
	rep.results = map[string]map[string][]sample{}
	for _, wl := range workloads {
		rep.workloads = append(rep.workloads, wl)
		rep.results[wl.id] = map[string][]sample{}
		for r := 0; r < m.reps; r++ {
			// A B C D E, then B C D E A, ...: interleaved, and no target
			// always runs first.
			for k := range targets {
				t := targets[(k+r)%len(targets)]
				s := wl.run(t)
				rep.results[wl.id][t.name] = append(rep.results[wl.id][t.name], s)
				fmt.Fprintf(os.Stderr, "  %-8s rep %d %-9s %s (load %.2f, others %.2f cores)\n", wl.id, r+1, t.name, s.short(wl), s.load1, s.foreign())
				time.Sleep(150 * time.Millisecond)
			}
		}
	}

	for _, p := range procs {
		p.stop()
		if p.events != "" && p.name == "m365tap" {
			rep.events, rep.outcomes = outcomeCounts(p.events)
		}
	}
	originStdin.Close()
	_ = origin.Wait()
	rep.elapsed = time.Since(started)
	rep.loadEnd = loadAvg()
	text := rep.markdown()
	fmt.Print(text)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(text), 0o644); err != nil {
			fail(err)
		}
	}
	if *keep {
		fmt.Fprintln(os.Stderr, "harness: work directory kept:", dir)
	} else {
		_ = os.RemoveAll(dir)
	}
}

func names(ts []target) string {
	var s []string
	for _, t := range ts {
		s = append(s, t.name)
	}
	return strings.Join(s, ",")
}

// atExit stops the children; fail runs it before exiting.
var atExit = func() {}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "harness:", err)
	atExit()
	os.Exit(1)
}

func itoa(n int) string { return strconv.Itoa(n) }

func goproxyProc(bin, dir string, lifetime time.Duration) *proxyProc {
	if bin == "" {
		return nil
	}
	return &proxyProc{name: "goproxy", note: "goproxy.NewProxyHttpServer() with defaults (bench/bareproxy)",
		start: func(p *proxyProc) (*exec.Cmd, error) {
			addr, err := freePort()
			if err != nil {
				return nil, err
			}
			p.addr = addr
			return bounded(lifetime, dir, "goproxy.out", cleanEnv(), bin, "-listen", addr)
		}}
}

func splitEnv(s string) []string {
	var out []string
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			out = append(out, kv)
		}
	}
	return out
}

func tapProc(name, bin string, extraEnv []string, dir string, lifetime time.Duration, o originInfo) *proxyProc {
	if bin == "" {
		return nil
	}
	events := filepath.Join(dir, name+"-events.log")
	ports := strings.Join([]string{portOf(o.TLS), portOf(o.Echo), portOf(o.Source), portOf(o.HTTP)}, ",")
	note := "built from the repository; every event to a file (--log-file, M365TAP_LOG_STDOUT=false), access.ports = the origin's ports, access.max_conns(_per_client)=30000, log.max_size_mb=10000 (no rotation during the run); everything else default"
	if len(extraEnv) > 0 {
		note += "; with " + strings.Join(extraEnv, " ")
	}
	if name != "m365tap" {
		note = bin + ": " + note
	}
	return &proxyProc{name: name, events: events, note: note,
		start: func(p *proxyProc) (*exec.Cmd, error) {
			addr, err := freePort()
			if err != nil {
				return nil, err
			}
			p.addr = addr
			env := cleanEnv(
				"M365TAP_LOG_STDOUT=false",
				"M365TAP_ACCESS_PORTS="+ports,
				"M365TAP_ACCESS_MAX_CONNS=30000",
				"M365TAP_ACCESS_MAX_CONNS_PER_CLIENT=30000",
				"M365TAP_LOG_MAX_SIZE_MB=10000",
			)
			env = append(env, extraEnv...)
			return bounded(lifetime, dir, name+".out", env, bin, "--listen", addr, "--log-file", events)
		}}
}

func squidProc(conf, dir string, lifetime time.Duration) *proxyProc {
	bin, err := exec.LookPath("squid")
	if err != nil {
		return nil
	}
	return &proxyProc{name: "squid", note: "Debian's squid, bench/squid.conf.in: no cache, access log to a file",
		start: func(p *proxyProc) (*exec.Cmd, error) {
			addr, err := freePort()
			if err != nil {
				return nil, err
			}
			p.addr = addr
			cfg := filepath.Join(dir, "squid.conf")
			if err := render(filepath.Join(conf, "squid.conf.in"), cfg, map[string]string{"PORT": portOf(addr), "DIR": dir}); err != nil {
				return nil, err
			}
			return bounded(lifetime, dir, "squid.out", cleanEnv(), bin, "-N", "-f", cfg)
		}}
}

func tinyproxyProc(conf, dir string, lifetime time.Duration) *proxyProc {
	bin, err := exec.LookPath("tinyproxy")
	if err != nil {
		return nil
	}
	return &proxyProc{name: "tinyproxy", note: "Debian's tinyproxy, bench/tinyproxy.conf.in: LogLevel Connect to a file, MaxClients 20000",
		start: func(p *proxyProc) (*exec.Cmd, error) {
			addr, err := freePort()
			if err != nil {
				return nil, err
			}
			p.addr = addr
			cfg := filepath.Join(dir, "tinyproxy.conf")
			if err := render(filepath.Join(conf, "tinyproxy.conf.in"), cfg, map[string]string{"PORT": portOf(addr), "DIR": dir}); err != nil {
				return nil, err
			}
			return bounded(lifetime, dir, "tinyproxy.out", cleanEnv(), bin, "-d", "-c", cfg)
		}}
}

// waitReady waits until a plain GET and a CONNECT both work through p.
func waitReady(p *proxyProc, o originInfo) error {
	t := target{name: p.name, proxy: p}
	deadline := time.Now().Add(15 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = probeOnce(t, o); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func probeOnce(t target, o originInfo) error {
	s := runPlain(t, o, 0, 1, "/small", 0, 50*time.Millisecond)
	if s.ops == 0 {
		return errors.New("plain GET through the proxy failed")
	}
	s = runTunnels(t, o, 0, 1, 0, 100*time.Millisecond)
	if s.ops == 0 {
		return errors.New("CONNECT + TLS through the proxy failed")
	}
	return nil
}

// outcomeCounts counts the exchange events in the tap's log by outcome.
func outcomeCounts(path string) (int, map[string]int) {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1, nil
	}
	counts := map[string]int{}
	total := 0
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, `"msg":"exchange"`) {
			continue
		}
		total++
		_, rest, ok := strings.Cut(line, `"outcome":"`)
		o, _, _ := strings.Cut(rest, `"`)
		if !ok {
			o = "?"
		}
		counts[o]++
	}
	return total, counts
}

func machineFacts() []string {
	var f []string
	f = append(f, "date: "+time.Now().UTC().Format(time.RFC3339))
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				_, v, _ := strings.Cut(line, ":")
				f = append(f, "cpu: "+strings.TrimSpace(v))
				break
			}
		}
	}
	f = append(f, "cores: "+strconv.Itoa(runtime.NumCPU()))
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f = append(f, "memory: "+strings.Join(strings.Fields(line)[1:], " "))
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		f = append(f, "kernel: "+cstr(u.Release[:]))
	}
	f = append(f, "go: "+runtime.Version())
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil {
		f = append(f, "open files limit: "+strconv.FormatUint(rl.Cur, 10)+" (hard "+strconv.FormatUint(rl.Max, 10)+")")
	}
	f = append(f, "load average at start: "+loadAvg())
	return f
}

func cstr(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}
