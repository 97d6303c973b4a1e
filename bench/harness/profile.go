package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// runProfiles runs each named workload once against each proxy while
// `perf record` samples the proxy process (cpu-clock, frame-pointer call
// graphs: Go keeps frame pointers on amd64), so the profile is of the
// real binary under the real load. The files are read with
// `perf report -i FILE --no-children` (see bench/RESULTS.md).
//
// With tool "strace", `strace -c -f` counts the proxy's system calls
// instead, which shows whether tunnels stay on splice(2).
func runProfiles(workloads []workload, targets []target, ids []string, secs time.Duration, dir, tool string, m mode) {
	if dir == "" {
		dir = "."
	}
	if _, err := exec.LookPath(tool); err != nil {
		fail(fmt.Errorf("profile mode needs %s: %v", tool, err))
	}
	for _, id := range ids {
		var wl *workload
		for i := range workloads {
			if workloads[i].id == id {
				wl = &workloads[i]
			}
		}
		if wl == nil {
			fail(fmt.Errorf("no workload %q", id))
		}
		for _, t := range targets {
			if t.proxy == nil {
				continue
			}
			pid := strconv.Itoa(t.proxy.pid())
			var prof *exec.Cmd
			var out string
			if tool == "strace" {
				out = filepath.Join(dir, "strace-"+id+"-"+t.name+".txt")
				prof = exec.Command("strace", "-c", "-f", "-p", pid, "-o", out)
			} else {
				out = filepath.Join(dir, "perf-"+id+"-"+t.name+".data")
				prof = exec.Command("perf", "record", "-q", "-e", "cpu-clock", "-F", "1999", "-g",
					"-p", pid, "-o", out, "--", "sleep", strconv.FormatFloat(secs.Seconds(), 'f', 1, 64))
			}
			// Warm up first, unprofiled.
			_ = wl.run(t)
			prof.Stderr = os.Stderr
			if err := prof.Start(); err != nil {
				fail(err)
			}
			time.Sleep(200 * time.Millisecond)
			s := runFor(*wl, t, secs-400*time.Millisecond, m)
			if tool == "strace" {
				_ = prof.Process.Signal(os.Interrupt)
			}
			_ = prof.Wait()
			ops := s.ops
			if ops > 0 {
				fmt.Fprintf(os.Stderr, "  (%d operations while profiled)\n", ops)
			}
			fmt.Fprintf(os.Stderr, "  profiled %-8s %-9s %s -> %s\n", id, t.name, s.short(*wl), out)
		}
	}
}

// runFor runs a workload with a longer measured window than the mode's.
func runFor(wl workload, t target, d time.Duration, m mode) sample {
	saved := modeDur
	modeDur = d
	defer func() { modeDur = saved }()
	return wl.run(t)
}
