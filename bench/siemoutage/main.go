// Command siemoutage measures what a syslog outage costs the proxy: the
// tap runs with a TCP syslog sink to a real rsyslogd, clients send plain
// HTTP requests through it without pause, and the request latency is
// measured in four phases: the receiver up, the receiver stopped, the
// receiver started again (the queue drains), and a receiver that accepts
// and never reads (a stalled SIEM). It then counts the exchanges the tap
// logged (its local JSON file), those rsyslog wrote, and those reported in
// events_dropped records, and prints what is unaccounted for.
//
// Everything listens on 127.0.0.1; every loop is bounded in time; every
// process started here is stopped before it returns.
//
//	go build -o /tmp/m365tap . && go run ./bench/siemoutage -m365tap /tmp/m365tap [-phase 5s -clients 4 -queue 10000]
//
// With -crash it measures instead what a receiver crash costs each kind of
// sink: rsyslogd is frozen (SIGSTOP) in the middle of the stream, killed
// (SIGKILL) while frozen and started again, with the tap's sink over TCP,
// over RELP to an rsyslogd with its default in-memory queue, over RELP to
// one whose ruleset has a direct queue (the answer comes after the write),
// and the last with a disk queue; then it counts the exchanges by id.
//
//	go run ./bench/siemoutage -m365tap /tmp/m365tap -crash [-phase 8s -clients 4]
//
// Needs rsyslogd (Debian package rsyslog) and, for -crash, imrelp
// (rsyslog-relp).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("m365tap", "", "the m365tap binary to measure")
	phase := flag.Duration("phase", 5*time.Second, "length of each phase")
	clients := flag.Int("clients", 4, "concurrent clients, each sending requests back to back")
	queue := flag.Int("queue", 10000, "the syslog sink's queue_size")
	crash := flag.Bool("crash", false, "measure events lost across a receiver crash, per kind of sink")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "usage: siemoutage -m365tap BIN [-phase 5s -clients 4 -queue 10000]")
		os.Exit(2)
	}
	if *crash {
		if err := runCrash(*bin, *phase, *clients, *queue); err != nil {
			fmt.Fprintln(os.Stderr, "siemoutage:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*bin, *phase, *clients, *queue); err != nil {
		fmt.Fprintln(os.Stderr, "siemoutage:", err)
		os.Exit(1)
	}
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type daemon struct {
	cmd  *exec.Cmd
	done chan error
}

func start(name string, args []string, ready string, log io.Writer) (*daemon, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &daemon{cmd: cmd, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", ready, time.Second); err == nil {
			c.Close()
			return d, nil
		}
		select {
		case err := <-d.done:
			return nil, fmt.Errorf("%s exited: %v", name, err)
		default:
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("%s not listening on %s", name, ready)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

func run(bin string, phase time.Duration, clients, queue int) error {
	rsyslogd, err := exec.LookPath("rsyslogd")
	if err != nil {
		rsyslogd = "/usr/sbin/rsyslogd"
		if _, err := os.Stat(rsyslogd); err != nil {
			return errors.New("rsyslogd not found (apt-get install rsyslog)")
		}
	}
	dir, err := os.MkdirTemp("", "siemoutage")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	daemonLog, err := os.Create(filepath.Join(dir, "daemons.log"))
	if err != nil {
		return err
	}
	defer daemonLog.Close()

	syslogAddr, tapAddr := freeAddr(), freeAddr()
	_, syslogPort, _ := net.SplitHostPort(syslogAddr)
	received := filepath.Join(dir, "received.log")
	rsConf := filepath.Join(dir, "rsyslog.conf")
	err = os.WriteFile(rsConf, []byte(fmt.Sprintf(`global(workDirectory="%s" maxMessageSize="256k")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="%s" ruleset="tap")
template(name="raw" type="string" string="%%rawmsg%%\n")
ruleset(name="tap") { action(type="omfile" file="%s" template="raw") }
`, dir, syslogPort, received)), 0o600)
	if err != nil {
		return err
	}
	rsArgs := []string{"-n", "-f", rsConf, "-i", filepath.Join(dir, "rsyslogd.pid")}
	rs, err := start(rsyslogd, rsArgs, syslogAddr, daemonLog)
	if err != nil {
		return err
	}
	defer func() {
		if rs != nil {
			rs.stop()
		}
	}()

	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})}
	oln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go origin.Serve(oln)
	defer origin.Close()

	events := filepath.Join(dir, "events.json")
	tapConf := filepath.Join(dir, "m365tap.yaml")
	err = os.WriteFile(tapConf, []byte(fmt.Sprintf(`listen: %s
log:
  stdout: false
  file: %s
  compress: false
  sinks:
    - type: syslog
      network: tcp
      address: %s
      format: ecs
      queue_size: %d
  drain_timeout: 5s
`, tapAddr, events, syslogAddr, queue)), 0o600)
	if err != nil {
		return err
	}
	tapErr := &lockedBuffer{}
	tap, err := start(bin, []string{"--config", tapConf}, tapAddr, tapErr)
	if err != nil {
		return fmt.Errorf("%v\n%s", err, tapErr)
	}

	proxyURL, _ := url.Parse("http://" + tapAddr)
	target := "http://" + oln.Addr().String() + "/"
	measure := func(name string) result {
		var mu sync.Mutex
		var lat []time.Duration
		errs := 0
		stop := time.Now().Add(phase)
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}
				defer c.CloseIdleConnections()
				var mine []time.Duration
				for time.Now().Before(stop) {
					t0 := time.Now()
					resp, err := c.Get(target)
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					d := time.Since(t0)
					if err != nil || resp.StatusCode != 200 {
						mu.Lock()
						errs++
						mu.Unlock()
						continue
					}
					mine = append(mine, d)
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
		}
		wg.Wait()
		return summarize(name, lat, errs, phase)
	}

	var results []result
	results = append(results, measure("receiver up"))
	rs.stop()
	rs = nil
	results = append(results, measure("receiver stopped"))
	if rs, err = start(rsyslogd, rsArgs, syslogAddr, daemonLog); err != nil {
		tap.stop()
		return err
	}
	results = append(results, measure("receiver back"))
	time.Sleep(2 * time.Second) // let the queue drain before the stall
	rs.stop()
	rs = nil
	// A SIEM that accepts connections and never reads: the socket buffers
	// fill, then the queue, then events are counted as dropped.
	stall, err := net.Listen("tcp", syslogAddr)
	if err != nil {
		tap.stop()
		return err
	}
	var held []net.Conn
	var heldMu sync.Mutex
	go func() {
		for {
			c, err := stall.Accept()
			if err != nil {
				return
			}
			heldMu.Lock()
			held = append(held, c)
			heldMu.Unlock()
		}
	}()
	results = append(results, measure("receiver stalled"))
	stall.Close()
	heldMu.Lock()
	for _, c := range held {
		c.Close()
	}
	heldMu.Unlock()
	if rs, err = start(rsyslogd, rsArgs, syslogAddr, daemonLog); err != nil {
		tap.stop()
		return err
	}
	time.Sleep(3 * time.Second) // reconnect, send the queue and the count
	tap.stop()

	fmt.Printf("m365tap request latency through the tap with a TCP syslog sink (ecs, queue_size %d), %d clients, %v per phase\n\n", queue, clients, phase)
	fmt.Println("| phase | requests | req/s | p50 | p90 | p99 | max | errors |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range results {
		fmt.Printf("| %s | %d | %.0f | %v | %v | %v | %v | %d |\n", r.name, r.n, r.rps, r.p50, r.p90, r.p99, r.max, r.errs)
	}

	logged, err := countExchanges(events, false)
	if err != nil {
		return err
	}
	got, err := countExchanges(received, true)
	if err != nil {
		return err
	}
	fmt.Printf("\nexchanges logged by the tap (local file): %d\n", logged.exchanges)
	fmt.Printf("exchanges rsyslog wrote: %d (%d distinct)\n", got.exchanges, len(got.ids))
	fmt.Printf("dropped, as events_dropped records at rsyslog: %d; on the local file: %d\n", got.dropped, logged.dropped)
	fmt.Printf("unaccounted for (logged - distinct received - dropped at rsyslog): %d\n", logged.exchanges-len(got.ids)-got.dropped)
	fmt.Printf("\nthe tap's stderr:\n%s", tapErr)
	return nil
}

type result struct {
	name               string
	n, errs            int
	rps                float64
	p50, p90, p99, max time.Duration
}

func summarize(name string, lat []time.Duration, errs int, d time.Duration) result {
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(time.Microsecond)
	}
	r := result{name: name, n: len(lat), errs: errs, rps: float64(len(lat)) / d.Seconds(), p50: q(0.50), p90: q(0.90), p99: q(0.99)}
	if len(lat) > 0 {
		r.max = lat[len(lat)-1].Round(time.Microsecond)
	}
	return r
}

type counts struct {
	exchanges, dropped int
	ids                map[float64]bool
}

// countExchanges reads the tap's JSON file, or rsyslog's file of RFC 5424
// messages whose MSG is an ECS document.
func countExchanges(path string, syslog bool) (counts, error) {
	c := counts{ids: map[float64]bool{}}
	f, err := os.Open(path)
	if err != nil {
		return c, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if syslog {
			// <PRI>1 TS HOST APP PROCID MSGID - MSG
			parts := strings.SplitN(line, " ", 8)
			if len(parts) < 8 {
				continue
			}
			line = parts[7]
		}
		var d map[string]any
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			return c, fmt.Errorf("%s: %v", path, err)
		}
		msg, _ := d["msg"].(string)
		if syslog {
			msg, _ = d["message"].(string)
		}
		switch msg {
		case "exchange":
			c.exchanges++
			id, _ := d["id"].(float64)
			if syslog {
				id, _ = d["event.sequence"].(float64)
			}
			c.ids[id] = true
		case "events_dropped":
			n, _ := d["dropped"].(float64)
			if syslog {
				n, _ = d["m365tap.dropped"].(float64)
			}
			c.dropped += int(n)
		}
	}
	return c, sc.Err()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
