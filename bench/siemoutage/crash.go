package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// crashCase is one kind of sink measured across a receiver crash.
type crashCase struct {
	name    string
	network string // tcp or relp
	direct  bool   // rsyslogd's ruleset has a direct queue
	disk    bool   // the sink has a disk queue
}

var crashCases = []crashCase{
	{"tcp", "tcp", true, false},
	{"relp, rsyslogd default queue", "relp", false, false},
	{"relp, rsyslogd direct queue", "relp", true, false},
	{"relp + disk_queue, direct queue", "relp", true, true},
}

type crashResult struct {
	c                                crashCase
	logged, distinct, dups, reported int
	tapDropped, queue                int
	stderr                           string
}

func runCrash(bin string, phase time.Duration, clients, queue int) error {
	rsyslogd, err := exec.LookPath("rsyslogd")
	if err != nil {
		rsyslogd = "/usr/sbin/rsyslogd"
		if _, err := os.Stat(rsyslogd); err != nil {
			return errors.New("rsyslogd not found (apt-get install rsyslog rsyslog-relp)")
		}
	}
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})}
	oln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go origin.Serve(oln)
	defer origin.Close()
	target := "http://" + oln.Addr().String() + "/"

	var results []crashResult
	for _, c := range crashCases {
		r, err := crashOnce(rsyslogd, bin, target, c, phase, clients, queue)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		results = append(results, r)
	}
	fmt.Printf("rsyslogd frozen (SIGSTOP) %v into a stream of plain HTTP exchanges from %d clients, killed (SIGKILL) %v later, started again; format ecs\n\n", phase/4, clients, phase/2)
	fmt.Println("| sink | queue_size | exchanges logged | arrived (distinct ids) | arrived twice | dropped, counted by the tap | of which reported at rsyslog | lost, not counted |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range results {
		fmt.Printf("| %s | %d | %d | %d | %d | %d | %d | %d |\n", r.c.name, r.queue, r.logged, r.distinct, r.dups, r.tapDropped, r.reported, r.logged-r.distinct-r.tapDropped)
	}
	for _, r := range results {
		fmt.Printf("\n%s, what the sink said on the tap's stderr:\n", r.c.name)
		for line := range strings.Lines(r.stderr) {
			if strings.HasPrefix(line, "m365tap: log sink") {
				fmt.Print(line)
			}
		}
	}
	return nil
}

func crashOnce(rsyslogd, bin, target string, c crashCase, phase time.Duration, clients, queue int) (crashResult, error) {
	res := crashResult{c: c}
	dir, err := os.MkdirTemp("", "siemcrash")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	daemonLog, err := os.Create(filepath.Join(dir, "daemons.log"))
	if err != nil {
		return res, err
	}
	defer daemonLog.Close()

	tcpAddr, relpAddr, tapAddr := freeAddr(), freeAddr(), freeAddr()
	_, tcpPort, _ := net.SplitHostPort(tcpAddr)
	_, relpPort, _ := net.SplitHostPort(relpAddr)
	received := filepath.Join(dir, "received.log")
	queueParam := ""
	if c.direct {
		queueParam = ` queue.type="Direct"`
	}
	rsConf := filepath.Join(dir, "rsyslog.conf")
	err = os.WriteFile(rsConf, []byte(fmt.Sprintf(`global(workDirectory="%s" maxMessageSize="256k")
module(load="imtcp")
module(load="imrelp")
input(type="imtcp" address="127.0.0.1" port="%s" ruleset="tap")
input(type="imrelp" address="127.0.0.1" port="%s" ruleset="tap" maxDataSize="256k")
template(name="raw" type="string" string="%%rawmsg%%\n")
ruleset(name="tap"%s) { action(type="omfile" file="%s" template="raw") }
`, dir, tcpPort, relpPort, queueParam, received)), 0o600)
	if err != nil {
		return res, err
	}
	rsArgs := []string{"-n", "-f", rsConf, "-i", filepath.Join(dir, "rsyslogd.pid")}
	rs, err := start(rsyslogd, rsArgs, tcpAddr, daemonLog)
	if err != nil {
		return res, err
	}
	defer func() {
		if rs != nil {
			rs.stop()
		}
	}()

	sinkAddr := tcpAddr
	if c.network == "relp" {
		sinkAddr = relpAddr
	}
	disk := ""
	if c.disk {
		// A small memory part: the disk carries the outage.
		queue = min(queue, 1000)
		disk = "\n      disk_queue: " + filepath.Join(dir, "queue")
	}
	res.queue = queue
	events := filepath.Join(dir, "events.json")
	tapConf := filepath.Join(dir, "m365tap.yaml")
	err = os.WriteFile(tapConf, []byte(fmt.Sprintf(`listen: %s
log:
  stdout: false
  file: %s
  compress: false
  sinks:
    - type: syslog
      network: %s
      address: %s
      format: ecs
      queue_size: %d%s
  drain_timeout: 10s
`, tapAddr, events, c.network, sinkAddr, queue, disk)), 0o600)
	if err != nil {
		return res, err
	}
	tapErr := &lockedBuffer{}
	tap, err := start(bin, []string{"--config", tapConf}, tapAddr, tapErr)
	if err != nil {
		return res, fmt.Errorf("%v\n%s", err, tapErr)
	}

	proxyURL, _ := url.Parse("http://" + tapAddr)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			cl := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}
			defer cl.CloseIdleConnections()
			for !stop.Load() {
				resp, err := cl.Get(target)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	time.Sleep(phase / 4)
	_ = rs.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(phase / 2)
	_ = rs.cmd.Process.Signal(syscall.SIGKILL)
	<-rs.done
	if rs, err = start(rsyslogd, rsArgs, tcpAddr, daemonLog); err != nil {
		stop.Store(true)
		wg.Wait()
		tap.stop()
		return res, err
	}
	time.Sleep(phase / 4)
	stop.Store(true)
	wg.Wait()
	time.Sleep(3 * time.Second) // the sink reconnects and sends what it holds
	tap.stop()
	time.Sleep(500 * time.Millisecond)

	logged, err := countExchanges(events, false)
	if err != nil {
		return res, err
	}
	got, err := countExchanges(received, true)
	if err != nil {
		return res, err
	}
	res.logged, res.distinct, res.dups, res.reported = logged.exchanges, len(got.ids), got.exchanges-len(got.ids), got.dropped
	res.tapDropped = logged.dropped
	res.stderr = tapErr.String()
	return res, nil
}
