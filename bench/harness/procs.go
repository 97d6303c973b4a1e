package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proxyProc is one proxy under test, run as a child process.
type proxyProc struct {
	name  string
	addr  string
	start func(p *proxyProc) (*exec.Cmd, error)
	cmd   *exec.Cmd
	note  string // how it was configured, for the report
	// events, for m365tap: the event log, to check every exchange was logged.
	events string
}

// pid is the proxy's own process: the child of timeout(1).
func (p *proxyProc) pid() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	kids := childrenOf(p.cmd.Process.Pid)
	if len(kids) == 0 {
		return 0
	}
	return kids[0]
}

func (p *proxyProc) run() error {
	cmd, err := p.start(p)
	if err != nil {
		return err
	}
	p.cmd = cmd
	return nil
}

// stop asks the proxy to stop (SIGTERM to it, so m365tap flushes its log),
// then kills what is left, timeout(1) included.
func (p *proxyProc) stop() {
	if p.cmd == nil {
		return
	}
	if pid := p.pid(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(4 * time.Second):
		if pid := p.pid(); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = p.cmd.Process.Kill()
		<-done
	}
	p.cmd = nil
}

// cleanEnv is the harness's environment without any proxy variable, so no
// proxy under test (bare goproxy reads them) chains to another.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		lk := strings.ToLower(k)
		if lk == "http_proxy" || lk == "https_proxy" || lk == "all_proxy" || lk == "no_proxy" || strings.HasPrefix(k, "M365TAP_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// bounded runs argv under timeout(1): whatever happens to the harness, the
// proxy is killed after lifetime.
func bounded(lifetime time.Duration, dir, logName string, env []string, argv ...string) (*exec.Cmd, error) {
	args := append([]string{"-s", "KILL", strconv.Itoa(int(lifetime.Seconds())) + "s"}, pinned(pinProxy, argv)...)
	cmd := exec.Command("timeout", args...)
	cmd.Dir = dir
	cmd.Env = env
	f, err := os.Create(filepath.Join(dir, logName))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	// If the harness dies, timeout(1) gets SIGTERM and passes it on to the
	// proxy (SIGKILL would kill timeout alone and orphan the proxy).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	return cmd, nil
}

func childrenOf(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// treeOf is pid and its live descendants.
func treeOf(pid int) []int {
	if pid <= 0 {
		return nil
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, childrenOf(out[i])...)
	}
	return out
}

// rssKiB is the resident set of pid and its descendants.
func rssKiB(pid int) int64 {
	var total int64
	for _, p := range treeOf(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				f := strings.Fields(line)
				if len(f) >= 2 {
					n, _ := strconv.ParseInt(f[1], 10, 64)
					total += n
				}
			}
		}
	}
	return total
}

// clkTck is USER_HZ, 100 on Linux.
const clkTck = 100

// cpuSeconds is utime+stime of pid (all its threads) and, with tree, of
// its live descendants.
func cpuSeconds(pid int, tree bool) float64 {
	pids := []int{pid}
	if tree {
		pids = treeOf(pid)
	}
	var ticks int64
	for _, p := range pids {
		if p <= 0 {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return float64(ticks) / clkTck
}

// machineBusy is the busy CPU time of the whole machine, in seconds.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return float64(busy) / clkTck
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func load1() float64 {
	f := strings.Fields(loadAvg())
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// startOrigin runs this binary's origin mode as a child and reads its
// addresses.
func startOrigin(dir string, lifetime time.Duration, dnsAddr string) (*exec.Cmd, originInfo, io.Closer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, originInfo{}, nil, err
	}
	argv := pinned(pinLoad, []string{self, "origin", "-lifetime", lifetime.String(), "-dns", dnsAddr})
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, originInfo{}, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, originInfo{}, nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, originInfo{}, nil, err
	}
	var info originInfo
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &info)
	}
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, originInfo{}, nil, fmt.Errorf("origin: %v", err)
	}
	return cmd, info, stdin, nil
}

// freePort picks a loopback port that is free now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// render writes a config template with @KEY@ replaced.
func render(tmpl, out string, vars map[string]string) error {
	b, err := os.ReadFile(tmpl)
	if err != nil {
		return err
	}
	s := string(b)
	for k, v := range vars {
		s = strings.ReplaceAll(s, "@"+k+"@", v)
	}
	if strings.Contains(s, "@") && strings.Contains(s, "@DIR@") {
		return errors.New("render: unreplaced variable in " + tmpl)
	}
	return os.WriteFile(out, []byte(s), 0o644)
}

// fdCount is the number of open descriptors of pid and its descendants.
func fdCount(pid int) int {
	n := 0
	for _, p := range treeOf(pid) {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p))
		if err == nil {
			n += len(ents)
		}
	}
	return n
}

// pinProxy and pinLoad (-pin) are CPU lists for taskset(1): the proxies on
// one, the origin and the generator on the other, as a harness that
// separates them would run. Empty: no pinning (the default: the scheduler
// places everything, as on a PC). A Go program started on one CPU sets
// GOMAXPROCS to 1.
var pinProxy, pinLoad string

// pinned prefixes argv with taskset when cpus is set; taskset execs the
// program, so the process's pid stays the one the harness measures.
func pinned(cpus string, argv []string) []string {
	if cpus == "" {
		return argv
	}
	return append([]string{"taskset", "-c", cpus}, argv...)
}

// pinSelf moves every thread of the harness (the generator) onto cpus.
func pinSelf(cpus string) error {
	if cpus == "" {
		return nil
	}
	out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		return fmt.Errorf("taskset: %v: %s", err, out)
	}
	return nil
}
