package logs

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// A network sink never blocks the proxy and never loses an event silently.
//
// The logging call only encodes the record and copies it into a bounded
// queue (a ring of reusable buffers) under a mutex that no I/O is done
// under; when the queue is full the record is counted as dropped instead.
// One sender goroutine per sink connects, writes batches, reconnects with
// backoff, prints each repeated error once, and turns the drop count into a
// visible events_dropped record: to the sink itself once it is reachable,
// and to the local sinks (stdout, files) within a second.
//
// A record leaves the queue only once the receiver's TCP has acknowledged
// its last byte (Linux: tcpi_bytes_acked). When a connection dies, what
// was written but not acknowledged is sent again on the next one, so an
// outage loses nothing up to the queue bound; records acknowledged by the
// receiver's kernel but never read by the daemon (it crashed with them in
// its socket buffer) cannot be seen from here. Elsewhere than on Linux, and
// over UDP, a record leaves the queue once written.
//
// Over RELP (relp.go) a record leaves the queue once the receiving daemon
// has answered its syslog command with "200": the gap above is closed. A
// record whose answer was lost with the connection is sent again, so the
// receiver may get it twice (at least once, never lost).
//
// With a disk queue (diskqueue.go) the records go through files first and
// the memory queue is filled from them, so the bound is the disk's and a
// restarted tap sends what the previous run held.

// shipConfig is one network sink's settings.
type shipConfig struct {
	name    string // for messages: "syslog tcp 127.0.0.1:514"
	network string // udp, tcp, tls or relp
	address string
	tls     *tls.Config
	queue   int
	stderr  io.Writer
	// disk, when set, is the sink's disk queue (opened by the builder);
	// the shipper owns it from then on and closes it in finish.
	disk *diskQueue

	dialTimeout  time.Duration
	writeTimeout time.Duration
	backoffMin   time.Duration
	backoffMax   time.Duration
	// reportEvery spaces the events_dropped records (and the ack polls'
	// idle tick); tests shorten it.
	reportEvery time.Duration
}

const (
	defaultQueue       = 10000
	defaultDialTimeout = 5 * time.Second
	defaultWriteTO     = 10 * time.Second
	defaultBackoffMin  = 100 * time.Millisecond
	defaultBackoffMax  = 5 * time.Second
	defaultReportEvery = time.Second
	ackPoll            = 10 * time.Millisecond
	diskWriteEvery     = 100 * time.Millisecond
	maxBatch           = 64 << 10
	maxDatagram        = 65000 // IPv4 UDP payload limit, with room to spare
	keepSlot           = 64 << 10
)

// shipper is one network sink: its queue and its sender goroutine.
type shipper struct {
	cfg shipConfig
	hdr syslogHeader
	enc zapcore.Encoder // this sink's encoder, for its own events_dropped records
	// locals receives events_dropped records for the local sinks.
	locals *zap.Logger

	mu     sync.Mutex
	slots  [][]byte
	head   int // oldest record not yet acknowledged
	n      int // records held: unsent and unacknowledged
	sent   int // of those, written on the current connection
	closed bool
	drops  uint64 // records dropped since the start

	wake   chan struct{}
	quit   chan struct{}
	done   chan struct{}
	stopAt atomic.Int64 // drain deadline, unix nanoseconds

	// The sender goroutine's own state.
	ends        []uint64 // per slot: stream offset its last byte ends at
	conn        net.Conn
	tcp         *net.TCPConn
	wire        *countConn
	ackBase     uint64
	ackOK       bool
	dead        chan struct{} // closed by the reader when the peer goes away
	readErr     error         // why, unless it closed cleanly; set before dead closes
	connectedAt time.Time
	announced   bool // the reconnection was announced and the backoff reset
	readerDone  chan struct{}
	wbuf        []byte
	errKey      string
	failures    int
	sentDrops   uint64 // drops carried by acknowledged events_dropped records
	pending     dropRecord
	lastRecord  time.Time
	localDrops  uint64 // drops told to the local sinks
	lastLocal   time.Time
	warnedFull  bool

	// RELP: syslog commands sent on the current connection, and how many
	// of them the receiver has answered (set by the reader goroutine).
	relpSent  uint64
	relpAcked atomic.Uint64

	// Disk queue (nil without one): the position each slot's record ends
	// at in the files, and the logging call's framing buffer (under mu).
	dq          *diskQueue
	dpos        []diskPos
	scratch     []byte
	diskWritten time.Time
}

// dropRecord is an events_dropped record written to the sink and not yet
// acknowledged: if the connection dies first, its count is sent again.
type dropRecord struct {
	active bool
	upTo   uint64 // s.drops when it was written
	end    uint64 // stream offset of its last byte
}

func newShipper(cfg shipConfig, hdr syslogHeader, enc zapcore.Encoder) *shipper {
	if cfg.queue <= 0 {
		cfg.queue = defaultQueue
	}
	if cfg.dialTimeout <= 0 {
		cfg.dialTimeout = defaultDialTimeout
	}
	if cfg.writeTimeout <= 0 {
		cfg.writeTimeout = defaultWriteTO
	}
	if cfg.backoffMin <= 0 {
		cfg.backoffMin = defaultBackoffMin
	}
	if cfg.backoffMax <= 0 {
		cfg.backoffMax = defaultBackoffMax
	}
	if cfg.reportEvery <= 0 {
		cfg.reportEvery = defaultReportEvery
	}
	if cfg.stderr == nil {
		cfg.stderr = io.Discard
	}
	s := &shipper{
		cfg:    cfg,
		hdr:    hdr,
		enc:    enc,
		locals: zap.NewNop(),
		slots:  make([][]byte, cfg.queue),
		ends:   make([]uint64, cfg.queue),
		wake:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		dq:     cfg.disk,
	}
	if s.dq != nil {
		s.dpos = make([]diskPos, cfg.queue)
	}
	return s
}

// shipCore is the zapcore.Core of a network sink.
type shipCore struct {
	zapcore.LevelEnabler
	enc zapcore.Encoder
	s   *shipper
}

func (c *shipCore) With(fields []zapcore.Field) zapcore.Core {
	enc := c.enc.Clone()
	for i := range fields {
		fields[i].AddTo(enc)
	}
	return &shipCore{LevelEnabler: c.LevelEnabler, enc: enc, s: c.s}
}

func (c *shipCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

// Write encodes the record and queues it; it never waits for the network.
func (c *shipCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	buf, err := c.enc.EncodeEntry(ent, fields)
	if err != nil {
		return err
	}
	c.s.enqueue(ent, buf.Bytes())
	buf.Free()
	return nil
}

// Sync returns at once: waiting for a SIEM is what this core never does.
// Logs.Close drains the queue.
func (c *shipCore) Sync() error { return nil }

// enqueue frames the record into the next free slot (or, with a disk
// queue, onto the disk queue's buffer), or counts it dropped.
func (s *shipper) enqueue(ent zapcore.Entry, payload []byte) {
	s.mu.Lock()
	switch {
	case s.closed:
		s.drops++
	case s.dq != nil:
		s.scratch = s.hdr.appendFrame(s.scratch[:0], ent, payload)
		if !s.dq.append(s.scratch) {
			s.drops++
		}
		if cap(s.scratch) > keepSlot {
			s.scratch = nil
		}
	case s.n == len(s.slots):
		s.drops++
	default:
		i := (s.head + s.n) % len(s.slots)
		s.slots[i] = s.hdr.appendFrame(s.slots[i][:0], ent, payload)
		s.n++
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// countConn counts the bytes written on the wire, TLS records included,
// to compare with what the peer acknowledged.
type countConn struct {
	net.Conn
	n atomic.Uint64
}

func (c *countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(uint64(n))
	return n, err
}

func (s *shipper) run() {
	defer close(s.done)
	backoff := s.cfg.backoffMin
	var retry time.Time
	var deadline time.Time
	quit := s.quit
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	fail := func(now time.Time, err error) {
		s.noteError(err)
		s.disconnect()
		retry = now.Add(jitter(backoff))
		backoff = min(backoff*2, s.cfg.backoffMax)
	}
	for {
		now := time.Now()
		draining := quit == nil
		if draining && !now.Before(deadline) {
			break
		}
		s.reportLocal(now, false)
		if s.dq != nil {
			s.diskWrite(now)
		}
		if s.conn == nil && !now.Before(retry) {
			if err := s.connect(deadline); err != nil {
				fail(now, err)
			} else {
				s.connectedAt, s.announced = now, false
			}
		}
		if s.conn != nil {
			if err := s.flush(now, draining, deadline); err != nil {
				fail(now, err)
			}
		}
		if s.conn != nil {
			s.release()
			// A connection counts as back once it has lasted: a receiver
			// that refuses the client certificate after a TLS 1.3
			// handshake accepts and drops every attempt.
			if !s.announced && now.Sub(s.connectedAt) >= s.cfg.reportEvery {
				s.noteConnected()
				s.announced = true
				backoff = s.cfg.backoffMin
			}
		}
		if draining && s.idle() {
			break
		}

		var wait time.Duration
		switch {
		case s.conn == nil:
			wait = time.Until(retry)
		case s.unsent():
			wait = 0
		case s.unacked():
			wait = ackPoll
		default:
			wait = s.cfg.reportEvery
		}
		if draining {
			wait = min(wait, time.Until(deadline))
		}
		if s.dq != nil && s.diskPending() {
			wait = min(wait, diskWriteEvery)
		}
		if wait <= 0 {
			select {
			case <-quit:
				quit, deadline = nil, time.Unix(0, s.stopAt.Load())
			case <-s.dead:
				fail(time.Now(), s.peerError())
				retry = time.Now()
			default:
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-s.wake:
		case <-timer.C:
		case <-quit:
			quit, deadline = nil, time.Unix(0, s.stopAt.Load())
		case <-s.dead:
			// The receiver closed the connection: say so once, and try
			// again at once; a daemon restarting is up again soon.
			fail(time.Now(), s.peerError())
			retry = time.Now()
		}
		timer.Stop()
	}
	s.finish()
}

var errPeerClosed = errors.New("the receiver closed the connection")

// peerError says why the reader saw the connection end: a TLS alert (a
// client certificate refused after a TLS 1.3 handshake) or a reset, else
// errPeerClosed. Called once dead is closed.
func (s *shipper) peerError() error {
	if s.readErr != nil {
		return fmt.Errorf("the receiver ended the connection: %w", s.readErr)
	}
	return errPeerClosed
}

func jitter(d time.Duration) time.Duration {
	// ±20% so that many taps restarting together do not reconnect in step.
	return d - d/5 + time.Duration(rand.Int64N(int64(d)*2/5+1))
}

func (s *shipper) connect(deadline time.Time) error {
	ctx := context.Background()
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	d := net.Dialer{Timeout: s.cfg.dialTimeout}
	if s.cfg.network == "udp" {
		c, err := d.DialContext(ctx, "udp", s.cfg.address)
		if err != nil {
			return err
		}
		s.wire = &countConn{Conn: c}
		s.conn, s.ackOK = s.wire, false
		return nil
	}
	c, err := d.DialContext(ctx, "tcp", s.cfg.address)
	if err != nil {
		return err
	}
	tcp := c.(*net.TCPConn)
	if s.cfg.network == "relp" {
		return s.connectRELP(tcp, deadline)
	}
	// The SYN counts as one acknowledged byte; anything less means the
	// kernel does not report tcpi_bytes_acked.
	base, ok := tcpAcked(tcp)
	s.ackBase, s.ackOK = base, ok && base > 0
	s.tcp = tcp
	s.wire = &countConn{Conn: tcp}
	var conn net.Conn = s.wire
	if s.cfg.network == "tls" {
		tc := tls.Client(s.wire, s.cfg.tls)
		hctx, cancel := context.WithTimeout(ctx, s.cfg.dialTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			tcp.Close()
			s.tcp, s.wire = nil, nil
			return err
		}
		conn = tc
	}
	s.conn = conn
	// A syslog receiver never writes; a read returning means it closed
	// or reset the connection. (For TLS the read also takes in session
	// tickets.)
	s.dead = make(chan struct{})
	s.readerDone = make(chan struct{})
	s.readErr = nil
	go func(c net.Conn, dead, done chan struct{}) {
		defer close(done)
		var b [512]byte
		for {
			if _, err := c.Read(b[:]); err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
					s.readErr = err // read by the sender after dead is closed
				}
				close(dead)
				return
			}
		}
	}(conn, s.dead, s.readerDone)
	return nil
}

// connectRELP opens a RELP session on a connected socket and starts the
// reader of the receiver's answers.
func (s *shipper) connectRELP(tcp *net.TCPConn, deadline time.Time) error {
	openBy := time.Now().Add(s.cfg.dialTimeout)
	if !deadline.IsZero() && deadline.Before(openBy) {
		openBy = deadline
	}
	r, err := relpOpen(tcp, openBy)
	if err != nil {
		tcp.Close()
		return err
	}
	s.tcp, s.wire, s.ackOK = tcp, &countConn{Conn: tcp}, false
	s.conn = s.wire
	s.relpSent = 0
	s.relpAcked.Store(0)
	s.dead = make(chan struct{})
	s.readerDone = make(chan struct{})
	s.readErr = nil
	go s.readRELPAnswers(r, s.dead, s.readerDone)
	return nil
}

// readRELPAnswers counts the receiver's "200" answers, which come in the
// order of the commands (the open was 1, the first syslog command 2). Any
// other answer, a hint other than serverclose, or a frame out of order
// ends the connection: what it carried is sent again on the next one.
func (s *shipper) readRELPAnswers(r *bufio.Reader, dead, done chan struct{}) {
	defer close(done)
	defer close(dead)
	var buf []byte
	next := uint64(2)
	for {
		f, b, err := readRELP(r, buf)
		buf = b
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.readErr = err
			}
			return
		}
		switch {
		case f.txnr == 0 && f.cmd == "serverclose":
			return
		case f.cmd == "rsp" && f.txnr == relpTxnr(next):
			if code, text := relpStatus(f.data); code != 200 && len(f.data) > 0 {
				// imrelp answers 500 only to a command it has disabled.
				s.readErr = fmt.Errorf("relp: the receiver answered %d %s", code, text)
				return
			}
			next++
			s.relpAcked.Add(1)
			if r.Buffered() == 0 {
				select {
				case s.wake <- struct{}{}:
				default:
				}
			}
		default:
			s.readErr = fmt.Errorf("relp: unexpected %q frame with transaction %d (awaiting %d)", f.cmd, f.txnr, relpTxnr(next))
			return
		}
	}
}

// disconnect closes the connection; records written on it and not
// acknowledged go out again on the next.
func (s *shipper) disconnect() {
	if s.conn == nil {
		return
	}
	if s.cfg.network == "relp" && s.readerDone != nil {
		// Answers already in the socket buffer still count, even after a
		// write failed on a reset: read them (for at most 100 ms) before
		// deciding what to send again, or answered events come twice.
		_ = s.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		<-s.readerDone
	}
	s.release()
	s.conn.Close()
	if s.readerDone != nil {
		<-s.readerDone
	}
	s.conn, s.tcp, s.wire, s.dead, s.readerDone = nil, nil, nil, nil, nil
	s.mu.Lock()
	s.sent = 0
	s.mu.Unlock()
	s.pending.active = false
}

// acked is how far the stream is known delivered: bytes, or over RELP
// syslog commands answered.
func (s *shipper) acked() uint64 {
	if s.wire == nil {
		return 0
	}
	if s.cfg.network == "relp" {
		return s.relpAcked.Load()
	}
	if s.ackOK && s.tcp != nil {
		if a, ok := tcpAcked(s.tcp); ok {
			if a < s.ackBase {
				return 0
			}
			return a - s.ackBase
		}
	}
	return s.wire.n.Load()
}

// release drops the acknowledged records from the queue.
func (s *shipper) release() {
	acked := s.acked()
	s.mu.Lock()
	released := false
	var last diskPos
	for s.sent > 0 && s.ends[s.head] <= acked {
		if cap(s.slots[s.head]) > keepSlot {
			s.slots[s.head] = nil
		}
		if s.dq != nil {
			last, released = s.dpos[s.head], true
		}
		s.head = (s.head + 1) % len(s.slots)
		s.n--
		s.sent--
	}
	if released {
		s.dq.ack(last)
	}
	s.mu.Unlock()
	if s.pending.active && s.pending.end <= acked {
		n := s.pending.upTo - s.sentDrops
		s.sentDrops = s.pending.upTo
		s.pending.active = false
		fmt.Fprintf(s.cfg.stderr, "m365tap: log sink %s: told it that %d events were dropped while the queue was full\n", s.cfg.name, n)
		s.warnedFull = false
	}
}

func (s *shipper) unsent() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n > s.sent || s.dq != nil && s.n < len(s.slots) && s.dq.unread()
}

// diskWrite writes what the logging calls appended to the disk queue once
// 16 KiB have gathered or the oldest has waited diskWriteEvery, so that it
// is in the files (and survives a crash of the tap) soon, without one write
// per event while the receiver is away: the sender's loop turns once per
// event then.
func (s *shipper) diskWrite(now time.Time) {
	s.mu.Lock()
	if n := len(s.dq.pend); n >= 16<<10 || n > 0 && now.Sub(s.diskWritten) >= diskWriteEvery {
		s.drops += uint64(s.dq.flush())
		s.diskWritten = now
	}
	s.mu.Unlock()
}

func (s *shipper) diskPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.dq.pend) > 0
}

// refill moves records from the disk queue into the free slots, in order,
// writing the appended ones first when there is room for them.
func (s *shipper) refill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == len(s.slots) {
		return
	}
	s.drops += uint64(s.dq.flush())
	for s.n < len(s.slots) {
		i := (s.head + s.n) % len(s.slots)
		rec, end, ok := s.dq.next(s.slots[i])
		if !ok {
			return
		}
		s.slots[i], s.dpos[i] = rec, end
		s.n++
	}
}

// fullReason is the events_dropped reason for a record that found no room.
func (s *shipper) fullReason() string {
	if s.dq != nil {
		return "disk_queue_full"
	}
	return "queue_full"
}

func (s *shipper) unacked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent > 0 || s.pending.active
}

func (s *shipper) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n == 0 && s.drops == s.sentDrops && !s.pending.active && (s.dq == nil || !s.dq.unread())
}

func (s *shipper) loadDrops() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.drops
}

// flush writes the events_dropped record when one is due, then the queued
// records, in batches; it returns after a bounded amount so that the loop
// keeps serving quit and the local reports under a sustained load.
func (s *shipper) flush(now time.Time, draining bool, deadline time.Time) error {
	wd := now.Add(s.cfg.writeTimeout)
	if draining && deadline.Before(wd) {
		wd = deadline
	}
	if err := s.conn.SetWriteDeadline(wd); err != nil {
		return err
	}
	if !s.pending.active {
		drops := s.loadDrops()
		if drops > s.sentDrops && (draining || now.Sub(s.lastRecord) >= s.cfg.reportEvery) {
			if err := s.writeDropRecord(now, drops); err != nil {
				return err
			}
		}
	}
	for range 16 {
		if s.dq != nil {
			s.refill()
		}
		s.mu.Lock()
		start, avail := (s.head+s.sent)%len(s.slots), s.n-s.sent
		s.mu.Unlock()
		if avail == 0 {
			return nil
		}
		// The slots [start, start+avail) are the sender's to read: the
		// producer only ever writes the slot after the last one held.
		k := 0
		if s.cfg.network == "udp" {
			f := s.slots[start]
			if len(f) > maxDatagram {
				f = f[:maxDatagram]
			}
			if _, err := s.conn.Write(f); err != nil {
				return err
			}
			k = 1
		} else if s.cfg.network == "relp" {
			// Within the window; each record's end is its own command.
			window := relpWindow - int(s.relpSent-s.relpAcked.Load())
			if window <= 0 {
				return nil
			}
			s.wbuf = s.wbuf[:0]
			for k < avail && k < window && (k == 0 || len(s.wbuf) < maxBatch) {
				i := (start + k) % len(s.slots)
				s.relpSent++
				s.wbuf = appendRELP(s.wbuf, relpTxnr(s.relpSent+1), "syslog", s.slots[i])
				s.ends[i] = s.relpSent
				k++
			}
			if _, err := s.conn.Write(s.wbuf); err != nil {
				return err
			}
			if cap(s.wbuf) > 4*maxBatch {
				s.wbuf = nil
			}
		} else {
			s.wbuf = s.wbuf[:0]
			for k < avail && (k == 0 || len(s.wbuf) < maxBatch) {
				s.wbuf = appendOctetCounted(s.wbuf, s.slots[(start+k)%len(s.slots)])
				k++
			}
			if _, err := s.conn.Write(s.wbuf); err != nil {
				return err
			}
			if cap(s.wbuf) > 4*maxBatch {
				s.wbuf = nil
			}
		}
		if s.cfg.network != "relp" {
			end := s.wire.n.Load()
			for j := range k {
				s.ends[(start+j)%len(s.slots)] = end
			}
		}
		s.mu.Lock()
		s.sent += k
		s.mu.Unlock()
		s.release()
	}
	return nil
}

func (s *shipper) dropFields(n uint64, reason string) []zapcore.Field {
	return []zapcore.Field{
		zap.Uint64("dropped", n),
		zap.String("sink", s.cfg.name),
		zap.String("reason", reason),
		zap.Int("queue_size", len(s.slots)),
	}
}

func (s *shipper) writeDropRecord(now time.Time, drops uint64) error {
	ent := zapcore.Entry{Level: zapcore.WarnLevel, Time: now, Message: "events_dropped"}
	buf, err := s.enc.EncodeEntry(ent, s.dropFields(drops-s.sentDrops, s.fullReason()))
	if err != nil {
		return err
	}
	frame := s.hdr.appendFrame(nil, ent, buf.Bytes())
	buf.Free()
	switch s.cfg.network {
	case "udp":
	case "relp":
		s.relpSent++
		frame = appendRELP(nil, relpTxnr(s.relpSent+1), "syslog", frame)
	default:
		frame = appendOctetCounted(nil, frame)
	}
	if _, err := s.conn.Write(frame); err != nil {
		return err
	}
	end := s.wire.n.Load()
	if s.cfg.network == "relp" {
		end = s.relpSent
	}
	s.pending = dropRecord{active: true, upTo: drops, end: end}
	s.lastRecord = now
	return nil
}

// reportLocal tells the local sinks about new drops, at most once per
// reportEvery, and stderr once per episode of a full queue.
func (s *shipper) reportLocal(now time.Time, final bool) {
	drops := s.loadDrops()
	if drops == s.localDrops {
		return
	}
	if !s.warnedFull {
		fmt.Fprintf(s.cfg.stderr, "m365tap: log sink %s: queue full (%d events): dropping new events, counting them, and reporting them as events_dropped\n", s.cfg.name, len(s.slots))
		s.warnedFull = true
	}
	if !final && now.Sub(s.lastLocal) < s.cfg.reportEvery {
		return
	}
	s.locals.Warn("events_dropped", s.dropFields(drops-s.localDrops, s.fullReason())...)
	s.localDrops, s.lastLocal = drops, now
}

// noteError prints an error unless it is the one printed last: an outage
// prints one line, not one per attempt.
func (s *shipper) noteError(err error) {
	s.failures++
	key := err.Error()
	var errno syscall.Errno
	var op *net.OpError
	if errors.As(err, &op) && errors.As(err, &errno) {
		key = op.Op + " " + errno.Error() // without the local port, which changes per attempt
	}
	if key == s.errKey {
		return
	}
	s.errKey = key
	fmt.Fprintf(s.cfg.stderr, "m365tap: log sink %s: %v (retrying with backoff; repeats of this error are not shown)\n", s.cfg.name, err)
}

func (s *shipper) noteConnected() {
	if s.failures > 0 {
		fmt.Fprintf(s.cfg.stderr, "m365tap: log sink %s: connected after %d failed attempts\n", s.cfg.name, s.failures)
	}
	s.failures, s.errKey = 0, ""
}

// finish runs when the drain ends: what is still queued was not sent.
func (s *shipper) finish() {
	if s.cfg.network == "relp" && s.conn != nil {
		s.closeRELP()
	}
	s.disconnect()
	s.mu.Lock()
	s.closed = true
	unsent, drops := s.n, s.drops
	var kept int64
	if s.dq != nil {
		// What the receiver has not acknowledged stays in the files for
		// the next start: it is not lost.
		s.drops += uint64(s.dq.flush())
		drops, kept, unsent = s.drops, s.dq.used, 0
		s.dq.close()
	}
	s.mu.Unlock()
	if kept > 0 {
		fmt.Fprintf(s.cfg.stderr, "m365tap: log sink %s: %d bytes of events not yet acknowledged stay in the disk queue %s and are sent after the next start\n",
			s.cfg.name, kept, s.dq.dir)
	}
	if unsent == 0 && drops == 0 {
		return
	}
	fmt.Fprintf(s.cfg.stderr, "m365tap: log sink %s: %d events not delivered: %d still queued when the drain ended, %d dropped while the queue was full\n",
		s.cfg.name, uint64(unsent)+drops, unsent, drops)
	// The local sinks hear of what they were not told yet.
	if untold := uint64(unsent) + drops - s.localDrops; untold > 0 {
		s.locals.Warn("events_dropped", s.dropFields(untold, "shutdown")...)
	}
	s.localDrops = drops
}

// closeRELP ends the session as RELP asks: a close command, then the
// receiver's answer and its serverclose (at most a second).
func (s *shipper) closeRELP() {
	if err := s.conn.SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
		return
	}
	if _, err := s.conn.Write(appendRELP(nil, relpTxnr(s.relpSent+2), "close", nil)); err != nil {
		return
	}
	select {
	case <-s.dead:
	case <-time.After(time.Second):
	}
}

// close stops taking records and drains the queue until deadline.
func (s *shipper) close(deadline time.Time) {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stopAt.Store(deadline.UnixNano())
	close(s.quit)
	<-s.done
}
