package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

type report struct {
	mode      mode
	started   time.Time
	elapsed   time.Duration
	dir       string
	facts     []string
	notes     []string
	targets   []target
	workloads []workload
	results   map[string]map[string][]sample
	mem       map[string]memResult
	events    int
	outcomes  map[string]int
	loadEnd   string
}

func (s sample) value(wl workload) float64 {
	if wl.unit == "MB/s" {
		return s.mbPerSec()
	}
	return s.opsPerSec()
}

func (s sample) short(wl workload) string {
	v := fmt.Sprintf("%9.1f %s", s.value(wl), wl.unit)
	if wl.latency {
		v += fmt.Sprintf(" p50 %s p99 %s", fmtDur(s.p50), fmtDur(s.p99))
	}
	if s.errs > 0 {
		v += fmt.Sprintf(" errors %d", s.errs)
	}
	return v + fmt.Sprintf(" proxy cpu %.2f cores", s.proxyCPU/s.secs)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summary is the medians of one target's samples for one workload.
type summary struct {
	n                     int
	value, lo, hi         float64
	p50, p99              time.Duration
	cpuPerOp              float64 // proxy CPU µs per op (req/tunnel), or ms per GB
	proxyCores            float64
	errs, redials         int64
	load1, others         float64
	loadLo, loadHi        float64
	genCores, originCores float64
	genPreemptK           float64 // generator preemptions per 1,000 operations
}

func summarize(wl workload, ss []sample) summary {
	var vals, p50, p99, cpu, cores, l1, oth, gen, orig, pre []float64
	var sum summary
	for _, s := range ss {
		v := s.value(wl)
		vals = append(vals, v)
		p50 = append(p50, float64(s.p50))
		p99 = append(p99, float64(s.p99))
		switch {
		case wl.unit == "MB/s" && s.bytes > 0:
			cpu = append(cpu, s.proxyCPU*1e3/(float64(s.bytes)/1e9)) // ms of CPU per GB
		case s.ops > 0:
			cpu = append(cpu, s.proxyCPU*1e6/float64(s.ops)) // µs per op
		}
		if s.ops > 0 {
			pre = append(pre, float64(s.genPreempt)*1e3/float64(s.ops))
		}
		cores = append(cores, s.proxyCPU/s.secs)
		gen = append(gen, s.genCPU/s.secs)
		orig = append(orig, s.originCPU/s.secs)
		l1 = append(l1, s.load1)
		oth = append(oth, s.foreign())
		sum.errs += s.errs
		sum.redials += s.redials
	}
	sum.n = len(ss)
	sum.value = median(vals)
	if len(vals) > 0 {
		sum.lo, sum.hi = slices.Min(vals), slices.Max(vals)
		sum.loadLo, sum.loadHi = slices.Min(l1), slices.Max(l1)
	}
	sum.p50, sum.p99 = time.Duration(median(p50)), time.Duration(median(p99))
	sum.cpuPerOp = median(cpu)
	sum.proxyCores = median(cores)
	sum.genCores, sum.originCores = median(gen), median(orig)
	sum.genPreemptK = median(pre)
	sum.load1, sum.others = median(l1), median(oth)
	return sum
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0fµs", float64(d)/1e3)
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func (r *report) summary(wl, target string) (summary, bool) {
	ss := r.results[wl][target]
	if len(ss) == 0 {
		return summary{}, false
	}
	var w workload
	for _, x := range r.workloads {
		if x.id == wl {
			w = x
		}
	}
	return summarize(w, ss), true
}

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# m365tap benchmark: %s mode\n\n", r.mode.name)
	p("Command: `bench/run.sh %s`. %d repetitions per target and workload, interleaved (each repetition visits every target in turn, starting one later each time); each run is %s of warm-up then %s measured. Medians over repetitions; the range is min–max of the repetitions.\n\n",
		r.mode.name, r.mode.reps, r.mode.warm, r.mode.dur)
	for _, f := range r.facts {
		p("- %s\n", f)
	}
	p("- load average at end: %s; harness wall time %s\n", r.loadEnd, r.elapsed.Round(time.Second))
	p("\nTargets:\n\n- direct: the generator talks to the origin itself (the floor; on 2 shared cores it shows where generator + origin are the limit)\n")
	for _, t := range r.targets {
		if t.proxy != nil {
			p("- %s: %s\n", t.name, t.proxy.note)
		}
	}
	for _, n := range r.notes {
		p("- NOTE %s\n", n)
	}
	p("\n`load` is the 1-minute load average at the start of each measured window (median, min–max); `others` is the CPU (in cores) used during the window by processes other than generator, origin and proxy: other engineers' jobs on this shared machine. `proxy CPU` is the proxy process's own CPU time per operation (µs per request or tunnel; ms per GB for bulk), the figure least disturbed by that sharing.\n")

	for _, wl := range r.workloads {
		p("\n## %s\n\n", wl.title)
		direct, hasDirect := r.summary(wl.id, "direct")
		gp, hasGP := r.summary(wl.id, "goproxy")
		sq, hasSq := r.summary(wl.id, "squid")
		if wl.latency {
			p("| target | %s (range) | ÷ direct | ÷ squid | ÷ goproxy | p50 | p99 | p99 ÷ squid | p99 ÷ goproxy | proxy CPU | CPU ÷ squid | CPU ÷ goproxy | proxy cores | generator cores | errors | redials | load (range) | others |\n", wl.unit)
			p("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
		} else {
			p("| target | %s (range) | ÷ direct | ÷ goproxy | proxy CPU | proxy cores | errors | load (range) | others |\n", wl.unit)
			p("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
		}
		for _, t := range r.targets {
			s, ok := r.summary(wl.id, t.name)
			if !ok {
				continue
			}
			rd, rg := "–", "–"
			if hasDirect {
				rd = ratio(s.value, direct.value)
			}
			if hasGP {
				rg = ratio(s.value, gp.value)
			}
			cpu := "–"
			if t.proxy != nil && s.cpuPerOp > 0 {
				if wl.unit == "MB/s" {
					cpu = fmt.Sprintf("%.0f ms/GB", s.cpuPerOp)
				} else {
					cpu = fmt.Sprintf("%.0f µs", s.cpuPerOp)
				}
			}
			cores := "–"
			if t.proxy != nil {
				cores = fmt.Sprintf("%.2f", s.proxyCores)
			}
			val := fmt.Sprintf("%.0f (%.0f–%.0f)", s.value, s.lo, s.hi)
			load := fmt.Sprintf("%.2f (%.2f–%.2f)", s.load1, s.loadLo, s.loadHi)
			if wl.latency {
				rs, p99s, p99g, cs, cg := "–", "–", "–", "–", "–"
				if hasSq {
					rs, p99s = ratio(s.value, sq.value), ratio(float64(s.p99), float64(sq.p99))
					if t.proxy != nil {
						cs = ratio(s.cpuPerOp, sq.cpuPerOp)
					}
				}
				if hasGP {
					p99g = ratio(float64(s.p99), float64(gp.p99))
					if t.proxy != nil {
						cg = ratio(s.cpuPerOp, gp.cpuPerOp)
					}
				}
				p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.2f | %d | %d | %s | %.2f |\n", t.name, val, rd, rs, rg, fmtDur(s.p50), fmtDur(s.p99), p99s, p99g, cpu, cs, cg, cores, s.genCores, s.errs, s.redials, load, s.others)
			} else {
				p("| %s | %s | %s | %s | %s | %s | %d | %s | %.2f |\n", t.name, val, rd, rg, cpu, cores, s.errs, load, s.others)
			}
		}
		if hasDirect {
			p("\nGenerator %.2f cores, origin %.2f cores in the direct runs (median).\n", direct.genCores, direct.originCores)
		}
	}

	r.generators(p)
	r.memory(p)
	if r.events > 0 {
		p("\nm365tap wrote %d exchange events to its log file during the run (every request and tunnel of every workload, warm-up and readiness checks included). By outcome:", r.events)
		keys := make([]string, 0, len(r.outcomes))
		for k := range r.outcomes {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p(" %s %d;", k, r.outcomes[k])
		}
		p("\n")
	}
	if lines := r.checks16(); len(lines) > 0 {
		p("\n## Targets (issue 16: plain small requests, event log to a file), from this run's medians\n\n")
		p("| workload | target | figure | required | result |\n| --- | --- | --- | --- | --- |\n")
		for _, line := range lines {
			p("%s\n", line)
		}
	}
	p("\n## Targets (issue 7), from this run's medians\n\n")
	p("| target | figure | required | result |\n| --- | --- | --- | --- |\n")
	for _, line := range r.checks() {
		p("%s\n", line)
	}
	return b.String()
}

func perTunnel(m memResult, pt memPoint) float64 {
	if pt.open == 0 {
		return 0
	}
	return float64(pt.rssKiB-m.idleKiB) / float64(pt.open)
}

func kib(k int64) string { return fmt.Sprintf("%.1f MiB", float64(k)/1024) }

func (r *report) checks() []string {
	var out []string
	verdict := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**missed**"
	}
	get := func(wl, t string) (summary, bool) { return r.summary(wl, t) }
	for _, wl := range []string{"plain32", "plain256"} {
		tap, ok1 := get(wl, "m365tap")
		sq, ok2 := get(wl, "squid")
		if ok1 && ok2 {
			out = append(out, fmt.Sprintf("| %s req/s ≥ Squid | %.0f vs %.0f (×%.2f) | ≥ 1.00 | %s |", wl, tap.value, sq.value, tap.value/sq.value, verdict(tap.value >= sq.value)))
			out = append(out, fmt.Sprintf("| %s p99 ≤ 1.5 × Squid | %s vs %s (×%.2f) | ≤ 1.50 | %s |", wl, fmtDur(tap.p99), fmtDur(sq.p99), float64(tap.p99)/float64(sq.p99), verdict(float64(tap.p99) <= 1.5*float64(sq.p99))))
		}
	}
	tap, ok1 := get("tls", "m365tap")
	if gp, ok := get("tls", "goproxy"); ok && ok1 {
		out = append(out, fmt.Sprintf("| tunnels/s ≥ 0.95 × goproxy | %.0f vs %.0f (×%.2f) | ≥ 0.95 | %s |", tap.value, gp.value, tap.value/gp.value, verdict(tap.value >= 0.95*gp.value)))
	}
	if sq, ok := get("tls", "squid"); ok && ok1 {
		out = append(out, fmt.Sprintf("| tunnels/s ≥ 0.9 × Squid | %.0f vs %.0f (×%.2f) | ≥ 0.90 | %s |", tap.value, sq.value, tap.value/sq.value, verdict(tap.value >= 0.9*sq.value)))
	}
	for _, wl := range []string{"bulk1", "bulk8", "large", "large4"} {
		tap, ok1 := get(wl, "m365tap")
		gp, ok2 := get(wl, "goproxy")
		if ok1 && ok2 {
			out = append(out, fmt.Sprintf("| %s MB/s ≥ 0.95 × goproxy | %.0f vs %.0f (×%.2f) | ≥ 0.95 | %s |", wl, tap.value, gp.value, tap.value/gp.value, verdict(tap.value >= 0.95*gp.value)))
		}
	}
	tm, ok1 := r.mem["m365tap"]
	gm, ok2 := r.mem["goproxy"]
	if ok1 && ok2 {
		// The largest step both proxies completed.
		for i := min(len(tm.at), len(gm.at)) - 1; i >= 0; i-- {
			a, b := tm.at[i], gm.at[i]
			if a.open != a.want || b.open != b.want {
				continue
			}
			pa, pb := perTunnel(tm, a), perTunnel(gm, b)
			out = append(out, fmt.Sprintf("| idle tunnel RSS ≤ 1.2 × goproxy (at %d tunnels; 10,000 not reachable here, see Memory) | %.1f vs %.1f KiB (×%.2f) | ≤ 1.20 | %s |", a.open, pa, pb, pa/pb, verdict(pa <= 1.2*pb)))
			break
		}
	}
	return out
}

// generators sets the same shape from wrk and from the harness's client
// side by side: where the two disagree, the generator is part of the
// figure.
func (r *report) generators(p func(string, ...any)) {
	pairs := [][2]string{{"wrk32", "plain32"}, {"wrk256", "plain256"}}
	var rows []string
	for _, pr := range pairs {
		for _, t := range r.targets {
			w, ok1 := r.summary(pr[0], t.name)
			h, ok2 := r.summary(pr[1], t.name)
			if !ok1 || !ok2 {
				continue
			}
			ws, okw := r.summary(pr[0], "squid")
			hs, okh := r.summary(pr[1], "squid")
			vs := func(a, b summary, ok bool, f func(summary) float64) string {
				if !ok || t.name == "direct" {
					return "–"
				}
				return ratio(f(a), f(b))
			}
			rate := func(x summary) float64 { return x.value }
			p99 := func(x summary) float64 { return float64(x.p99) }
			cpu := func(x summary) float64 { return x.cpuPerOp }
			cpuS := func(x summary) string {
				if t.proxy == nil {
					return "–"
				}
				return fmt.Sprintf("%.0f µs", x.cpuPerOp)
			}
			rows = append(rows, fmt.Sprintf("| %s | %s | %.0f / %.0f | %s / %s | %s / %s | %s / %s | %s / %s | %s / %s | %.2f / %.2f | %.1f / %.1f |",
				pr[0][3:], t.name, w.value, h.value, fmtDur(w.p99), fmtDur(h.p99), cpuS(w), cpuS(h),
				vs(w, ws, okw, rate), vs(h, hs, okh, rate), vs(w, ws, okw, p99), vs(h, hs, okh, p99), vs(w, ws, okw, cpu), vs(h, hs, okh, cpu),
				w.genCores, h.genCores, w.genPreemptK, h.genPreemptK))
		}
	}
	if len(rows) == 0 {
		return
	}
	p("\n## The same shape from two generators: wrk / the harness's client\n\n")
	p("Plain keep-alive GETs of 128 B, medians of this run; each cell is wrk's figure / the harness's. `generator cores` is the CPU the load generator itself used (wrk: its rusage; the harness: its own process), taken from the same 2 cores as the proxy's.\n\n")
	p("`generator preemptions` is the generator's involuntary context switches per 1,000 requests (wrk: its rusage; the harness: getrusage of its process): how often the scheduler took a CPU from it while requests were in flight. wrk gives each of its threads a fixed share of the connections, so one preempted wrk thread delays all of its connections at once; the harness's goroutines move to the other thread.\n\n")
	p("| connections | target | req/s | p99 | proxy CPU per request | rate ÷ squid | p99 ÷ squid | CPU ÷ squid | generator cores | generator preemptions |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, row := range rows {
		p("%s\n", row)
	}
}

// memory is the idle and idle-tunnel RSS table (not in wrk mode).
func (r *report) memory(p func(string, ...any)) {
	if len(r.mem) == 0 {
		return
	}
	p("\n## Memory: RSS of a fresh proxy, idle and with idle tunnels\n\n")
	p("Each proxy is restarted, serves one plain request and one tunnel, then idles %s; then tunnels to the TCP echo server are opened (32 at a time, each proven with one byte echoed) and left idle; RSS (VmRSS of the process and its children) is read %s after each step.\n\n", "1.5s", "1.5s")
	p("| target | idle RSS | tunnels open | RSS | per tunnel (from idle) | ÷ goproxy per tunnel | descriptors per tunnel | time to open | note |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	gpMem := r.mem["goproxy"]
	for _, t := range r.targets {
		m, ok := r.mem[t.name]
		if !ok {
			continue
		}
		if len(m.at) == 0 {
			p("| %s | %s | – | – | – | – | – | – | %s |\n", t.name, kib(m.idleKiB), m.err)
			continue
		}
		for i, pt := range m.at {
			per := perTunnel(m, pt)
			rg := "–"
			if i < len(gpMem.at) {
				rg = ratio(per, perTunnel(gpMem, gpMem.at[i]))
			}
			note := ""
			if i == len(m.at)-1 {
				note = m.err
			}
			fdsPer := "–"
			if pt.open > 0 {
				fdsPer = fmt.Sprintf("%.1f", float64(pt.fds-m.idleFDs)/float64(pt.open))
			}
			p("| %s | %s | %d | %s | %.1f KiB | %s | %s | %.1fs | %s |\n", t.name, kib(m.idleKiB), pt.open, kib(pt.rssKiB), per, rg, fdsPer, pt.secs, note)
		}
	}
}

// checks16 is issue 16's targets for plain small requests, from both
// generators: rate ≥ 1.2 × Squid, p99 ≤ 1.2 × Squid's, proxy CPU per
// request ≤ 0.8 × Squid's; for every m365tap target of the run.
func (r *report) checks16() []string {
	var out []string
	verdict := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**missed**"
	}
	for _, wl := range []string{"wrk32", "plain32", "wrk256", "plain256"} {
		sq, ok := r.summary(wl, "squid")
		if !ok {
			continue
		}
		for _, t := range r.targets {
			if t.proxy == nil || t.proxy.events == "" {
				continue
			}
			tap, ok := r.summary(wl, t.name)
			if !ok {
				continue
			}
			out = append(out,
				fmt.Sprintf("| %s | %s | req/s %.0f vs %.0f (×%.2f) | ≥ 1.20 | %s |", wl, t.name, tap.value, sq.value, tap.value/sq.value, verdict(tap.value >= 1.2*sq.value)),
				fmt.Sprintf("| %s | %s | p99 %s vs %s (×%.2f) | ≤ 1.20 | %s |", wl, t.name, fmtDur(tap.p99), fmtDur(sq.p99), float64(tap.p99)/float64(sq.p99), verdict(float64(tap.p99) <= 1.2*float64(sq.p99))),
				fmt.Sprintf("| %s | %s | CPU per request %.0f vs %.0f µs (×%.2f) | ≤ 0.80 | %s |", wl, t.name, tap.cpuPerOp, sq.cpuPerOp, tap.cpuPerOp/sq.cpuPerOp, verdict(tap.cpuPerOp <= 0.8*sq.cpuPerOp)))
		}
	}
	return out
}
