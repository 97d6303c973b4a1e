package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// wrk is a second load generator for the plain keep-alive shape: a C
// program with one epoll loop per thread, independent of this harness's Go
// client, so that a figure the harness reports can be checked against a
// load it did not generate. wrk cannot send CONNECT, so tunnels stay with
// the harness.
//
// Through a proxy, wrk connects to the proxy's address (the URL it is
// given) and a Lua script makes it send the absolute form a browser sends
// to a proxy: "GET http://origin/small HTTP/1.1" with the origin's Host.
// A proxy that saw origin-form would answer an error (Squid: 400 Invalid
// URL), which wrk counts as a non-2xx response and the report as an error.

// wrkScript writes the Lua script for target t and returns its path.
func wrkScript(dir string, t target, o originInfo, path string) (string, error) {
	var b strings.Builder
	b.WriteString("-- written by bench/harness: the request of the plain workload\n")
	if t.viaProxy() {
		fmt.Fprintf(&b, "wrk.path = %q\n", "http://"+o.HTTP+path)
	} else {
		fmt.Fprintf(&b, "wrk.path = %q\n", path)
	}
	fmt.Fprintf(&b, "wrk.headers[\"Host\"] = %q\n", o.HTTP)
	b.WriteString("wrk.headers[\"User-Agent\"] = \"m365tap-bench/1\"\n")
	b.WriteString("wrk.headers[\"Accept\"] = \"*/*\"\n")
	f := filepath.Join(dir, "wrk-"+t.name+".lua")
	return f, os.WriteFile(f, []byte(b.String()), 0o644)
}

// wrkBin is the wrk binary (-wrk); wrkThreads its -t.
var (
	wrkBin     string
	wrkThreads = 2
	workDir    string
)

// runWrk runs wrk with conc connections for dur against t and reads the
// proxy's CPU from /proc before and after; wrk's own CPU comes from its
// rusage. wrk has no warm-up: the connections are opened in the first
// milliseconds and counted in the window, which at thousands of requests
// per connection is noise.
func runWrk(t target, o originInfo, originPID, conc int, path string, dur time.Duration) sample {
	var s sample
	script, err := wrkScript(workDir, t, o, path)
	if err != nil {
		s.errs = 1
		return s
	}
	url := "http://" + o.HTTP + path
	if t.viaProxy() {
		url = "http://" + t.proxy.addr + "/"
	}
	secs := max(1, int(dur.Round(time.Second).Seconds()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	argv := pinned(pinLoad, []string{wrkBin})
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], "-t", strconv.Itoa(min(wrkThreads, conc)), "-c", strconv.Itoa(conc),
		"-d", strconv.Itoa(secs)+"s", "--timeout", "10s", "--latency", "-s", script, url)...)
	cmd.Env = cleanEnv()
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	proxyPID := t.proxy.pidOrZero()
	p0, o0, m0 := cpuSeconds(proxyPID, true), cpuSeconds(originPID, false), machineBusy()
	s.load1 = load1()
	st := time.Now()
	err = cmd.Run()
	el := time.Since(st)
	p1, o1, m1 := cpuSeconds(proxyPID, true), cpuSeconds(originPID, false), machineBusy()
	s.proxyCPU, s.originCPU, s.machine = p1-p0, o1-o0, m1-m0
	if cmd.ProcessState != nil {
		s.genCPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			s.genPreempt = ru.Nivcsw
		}
	}
	s.secs = el.Seconds()
	w, perr := parseWrk(out.String())
	if err != nil || perr != nil {
		fmt.Fprintf(os.Stderr, "  wrk %s: %v %v\n%s\n", t.name, err, perr, out.String())
		s.errs++
		return s
	}
	s.ops, s.p50, s.p99 = w.requests, w.p50, w.p99
	s.errs += w.errors
	// wrk's own run time, not the process's (which adds its start and exit):
	// the rate is wrk's, the CPU per request uses every request in the window.
	if w.secs > 0 {
		s.secs = w.secs
	}
	return s
}

type wrkResult struct {
	requests, errors int64
	secs             float64
	p50, p99         time.Duration
}

var (
	reWrkTotal  = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(us|ms|s|m),`)
	reWrkPct    = regexp.MustCompile(`^\s*(50|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s|m)\s*$`)
	reWrkSock   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reWrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// parseWrk reads wrk --latency's report; socket errors (connect, read,
// write, timeout) and non-2xx/3xx answers are the sample's errors.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	sc := bufio.NewScanner(strings.NewReader(out))
	var got50, got99, gotTotal bool
	for sc.Scan() {
		line := sc.Text()
		if m := reWrkPct.FindStringSubmatch(line); m != nil {
			d := wrkDur(m[2], m[3])
			if m[1] == "50" {
				r.p50, got50 = d, true
			} else {
				r.p99, got99 = d, true
			}
		}
		if m := reWrkTotal.FindStringSubmatch(line); m != nil {
			r.requests, _ = strconv.ParseInt(m[1], 10, 64)
			r.secs = wrkDur(m[2], m[3]).Seconds()
			gotTotal = true
		}
		if m := reWrkSock.FindStringSubmatch(line); m != nil {
			for _, v := range m[1:] {
				n, _ := strconv.ParseInt(v, 10, 64)
				r.errors += n
			}
		}
		if m := reWrkNon2xx.FindStringSubmatch(line); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			r.errors += n
		}
	}
	if !got50 || !got99 || !gotTotal {
		return r, errors.New("wrk: no latency distribution or request count in its output")
	}
	return r, nil
}

func wrkDur(v, unit string) time.Duration {
	f, _ := strconv.ParseFloat(v, 64)
	switch unit {
	case "us":
		return time.Duration(f * float64(time.Microsecond))
	case "ms":
		return time.Duration(f * float64(time.Millisecond))
	case "m":
		return time.Duration(f * float64(time.Minute))
	}
	return time.Duration(f * float64(time.Second))
}
