package logs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/internal/winetest"
)

func openTestQueue(t *testing.T, dir string, bound int64) (*diskQueue, *syncBuffer) {
	t.Helper()
	msgs := &syncBuffer{}
	d, err := openDiskQueue(dir, bound, func(f string, a ...any) { fmt.Fprintf(msgs, f+"\n", a...) })
	if err != nil {
		t.Fatal(err)
	}
	return d, msgs
}

func qrec(i int) []byte {
	return fmt.Appendf(nil, "<134>1 - h m365tap 1 exchange - record %05d %s", i, strings.Repeat("x", i%97))
}

// drain reads every record from the queue and acknowledges each.
func drain(t *testing.T, d *diskQueue) []string {
	t.Helper()
	var out []string
	d.flush()
	for {
		r, end, ok := d.next(nil)
		if !ok {
			return out
		}
		out = append(out, string(r))
		d.ack(end)
	}
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	return m
}

// TestDiskQueueOrderAcrossSegmentsAndRestarts writes many small segments,
// reads part, acknowledges part, reopens: reading resumes at the first
// record not acknowledged, in order, and segments behind the cursor are
// deleted.
func TestDiskQueueOrderAcrossSegmentsAndRestarts(t *testing.T) {
	dir := winetest.TempDir(t)
	d, _ := openTestQueue(t, dir, 1<<20) // segments of 128 KiB
	const n = 3000
	for i := range n {
		if !d.append(qrec(i)) {
			t.Fatalf("record %d refused below the bound", i)
		}
	}
	d.flush()
	if len(segFiles(t, dir)) < 3 {
		t.Fatalf("%d segments; want several", len(segFiles(t, dir)))
	}
	// Read 2000, acknowledge 1500: 500 were sent and not acknowledged.
	var ends []diskPos
	for i := range 2000 {
		r, end, ok := d.next(nil)
		if !ok || string(r) != string(qrec(i)) {
			t.Fatalf("record %d: %q %v", i, r, ok)
		}
		ends = append(ends, end)
	}
	d.ack(ends[1499])
	segsBefore := len(segFiles(t, dir))
	d.close()

	d, _ = openTestQueue(t, dir, 1<<20)
	got := drain(t, d)
	if len(got) != n-1500 || got[0] != string(qrec(1500)) || got[len(got)-1] != string(qrec(n-1)) {
		t.Fatalf("after reopening: %d records from %q; want %d from record 1500", len(got), got[0], n-1500)
	}
	for i, r := range got {
		if r != string(qrec(1500+i)) {
			t.Fatalf("record %d out of order: %q", 1500+i, r)
		}
	}
	if left := len(segFiles(t, dir)); left != 1 || segsBefore < 2 {
		t.Errorf("segments: %d before the restart, %d once all is acknowledged; want the last one only", segsBefore, left)
	}
	if d.used != 0 {
		t.Errorf("used = %d once all is acknowledged", d.used)
	}
	d.close()
}

// TestDiskQueueBound: the bound counts the records not acknowledged; a
// record beyond it is refused, and room comes back with acknowledgements.
func TestDiskQueueBound(t *testing.T) {
	d, _ := openTestQueue(t, winetest.TempDir(t), 64<<10)
	defer d.close()
	r := make([]byte, 1000-diskRecordHeader)
	accepted := 0
	for d.append(r) {
		accepted++
	}
	if accepted != 65 { // 64 KiB / 1000 bytes
		t.Fatalf("accepted %d records of 1000 bytes under 64 KiB", accepted)
	}
	d.flush()
	_, end, _ := d.next(nil)
	d.ack(end)
	if !d.append(r) || d.append(r) {
		t.Error("one acknowledged record should make room for exactly one")
	}
}

// TestDiskQueueTornTail: a record half-written when the tap died is cut at
// the next start; the records before it are kept.
func TestDiskQueueTornTail(t *testing.T) {
	dir := winetest.TempDir(t)
	d, _ := openTestQueue(t, dir, 1<<20)
	for i := range 10 {
		d.append(qrec(i))
	}
	d.close()
	seg := segFiles(t, dir)[0]
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 'p', 'a', 'r'}) // a header promising 200 bytes, and 3
	f.Close()

	d, msgs := openTestQueue(t, dir, 1<<20)
	got := drain(t, d)
	if len(got) != 10 || got[9] != string(qrec(9)) {
		t.Errorf("%d records after a torn tail; want the 10 whole ones", len(got))
	}
	if !strings.Contains(msgs.String(), "cut 11 bytes of an unfinished record") {
		t.Errorf("messages: %q", msgs)
	}
	// Appending goes on after the cut, readable.
	d.append(qrec(10))
	if got := drain(t, d); len(got) != 1 || got[0] != string(qrec(10)) {
		t.Errorf("after the cut: %q", got)
	}
	d.close()
}

// TestDiskQueueCorruptRecord: a record whose checksum fails is reported
// and the rest of its segment skipped; the next segment is read.
func TestDiskQueueCorruptRecord(t *testing.T) {
	dir := winetest.TempDir(t)
	d, _ := openTestQueue(t, dir, 1<<20)
	for i := range 3000 {
		d.append(qrec(i))
	}
	d.close()
	segs := segFiles(t, dir)
	slices.Sort(segs)
	b, _ := os.ReadFile(segs[0])
	b[diskRecordHeader+3] ^= 0xff // the first record's body
	os.WriteFile(segs[0], b, 0o600)

	d, msgs := openTestQueue(t, dir, 1<<20)
	got := drain(t, d)
	d.close()
	if !strings.Contains(msgs.String(), "checksum fails at offset 0") {
		t.Errorf("messages: %q", msgs)
	}
	if len(got) == 0 || len(got) >= 3000 || got[len(got)-1] != string(qrec(2999)) {
		t.Errorf("%d records read past a corrupt first segment; want the later segments' records", len(got))
	}
}

// TestDiskQueueLock: a second tap on the same directory is refused.
func TestDiskQueueLock(t *testing.T) {
	dir := winetest.TempDir(t)
	d, _ := openTestQueue(t, dir, 1<<20)
	_, err := openDiskQueue(dir, 1<<20, func(string, ...any) {})
	if !errors.Is(err, ErrDiskQueueInUse) {
		t.Errorf("second open: %v; want ErrDiskQueueInUse", err)
	}
	d.close()
	d, _ = openTestQueue(t, dir, 1<<20)
	d.close()
}

// TestDiskQueueFullCounted: a receiver away for longer than the disk bound
// holds: every event up to the bound arrives once it is back, and the
// events_dropped records (reason disk_queue_full) count exactly the rest,
// at the receiver and on the local output.
func TestDiskQueueFullCounted(t *testing.T) {
	rcv := newReceiver(t, nil)
	addr := rcv.addr
	rcv.stop()
	sk := config.Sink{Type: "syslog", Network: "tcp", Address: addr, QueueSize: 50, DiskQueue: filepath.Join(winetest.TempDir(t), "q"), DiskQueueMaxMB: 1}
	e := newSyslogLogs(t, sk, 10*time.Second)
	// Log until the megabyte is full, then beyond.
	s := e.lg.shippers[0]
	dropped := func() uint64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.drops
	}
	fits := 0
	for dropped() == 0 {
		fits++
		logSeq(e.lg, fits, fits)
	}
	fits-- // the last one was dropped
	const extra = 300
	logSeq(e.lg, fits+2, fits+extra)
	if got := dropped(); got != extra {
		t.Fatalf("%d dropped; want %d", got, extra)
	}
	if fits < 2000 {
		t.Fatalf("only %d records of about 350 bytes fitted in a megabyte", fits)
	}
	rcv.start()
	waitFor(t, "the disk queue to drain", 30*time.Second, func() bool {
		_, docs := payloadIDs(t, rcv.messages())
		return droppedIn(t, docs)["disk_queue_full"] == extra && len(docs) >= fits+1
	})
	if err := e.lg.Close(); err != nil {
		t.Fatal(err)
	}
	ids, docs := payloadIDs(t, rcv.messages())
	slices.Sort(ids)
	if !equalInts(ids, span(1, fits)) {
		t.Errorf("received %d exchanges; want 1..%d once each", len(ids), fits)
	}
	if got := droppedIn(t, docs); got["disk_queue_full"] != extra {
		t.Errorf("events_dropped at the receiver: %v", got)
	}
	if got := droppedIn(t, jsonLines(t, e.stdout.String())); got["disk_queue_full"] != extra {
		t.Errorf("events_dropped on the local output: %v", got)
	}
}

// TestDiskQueueSurvivesTapKill: a tap process logs events to a sink whose
// receiver is away, with a disk queue, and is killed (SIGKILL) without a
// chance to drain or close. A new tap on the same directory sends every
// event the first one had logged more than diskWriteEvery before the
// kill. The first tap is this test binary run again as a helper process.
func TestDiskQueueSurvivesTapKill(t *testing.T) {
	if dir := os.Getenv("M365TAP_DISKQUEUE_HELPER"); dir != "" {
		diskQueueHelper(dir, os.Getenv("M365TAP_DISKQUEUE_ADDR"))
		return
	}
	rcv := newReceiver(t, nil)
	addr := rcv.addr
	rcv.stop()
	dir := filepath.Join(winetest.TempDir(t), "q")
	// Fewer than 16 KiB of events: only the sender's timed write puts
	// them in the files (bulk writes are the other tests' part).
	const logged = 30
	cmd := exec.Command(os.Args[0], "-test.run=^TestDiskQueueSurvivesTapKill$")
	cmd.Env = append(os.Environ(), "M365TAP_DISKQUEUE_HELPER="+dir, "M365TAP_DISKQUEUE_ADDR="+addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The helper prints "logged" once its events are logged and two
	// write periods have passed; it is killed then.
	line := make([]byte, 64)
	n, _ := io.ReadAtLeast(out, line, len("logged"))
	if !strings.Contains(string(line[:n]), "logged") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q", line[:n])
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	rcv.start()
	sk := config.Sink{Type: "syslog", Network: "tcp", Address: rcv.addr, DiskQueue: dir}
	e := newSyslogLogs(t, sk, 10*time.Second)
	waitFor(t, "the killed tap's events", 20*time.Second, func() bool {
		ids, _ := payloadIDs(t, rcv.messages())
		return len(ids) >= logged
	})
	if err := e.lg.Close(); err != nil {
		t.Fatal(err)
	}
	ids, _ := payloadIDs(t, rcv.messages())
	slices.Sort(ids)
	if !equalInts(ids, span(1, logged)) {
		t.Errorf("received %d events; want 1..%d once each", len(ids), logged)
	}
}

// diskQueueHelper is the tap that gets killed.
func diskQueueHelper(dir, addr string) {
	sk := config.Sink{Type: "syslog", Network: "tcp", Address: addr, DiskQueue: dir, QueueSize: 100}
	lg, err := New(Options{Sinks: []config.Sink{sk}, Meta: testMeta, Stderr: io.Discard, tune: fast})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	logSeq(lg, 1, 30)
	time.Sleep(300 * time.Millisecond) // three write periods
	fmt.Println("logged")
	time.Sleep(time.Minute) // killed here
}
