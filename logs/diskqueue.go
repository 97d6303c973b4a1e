package logs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// A disk queue keeps a network sink's records in files, so that an outage
// longer than the memory queue loses nothing until the disk bound, and a
// tap that is restarted (or killed) during the outage sends what it held
// once it runs again.
//
// Every record of the sink goes through the disk: the logging call appends
// it to a buffer in memory (no I/O on the proxy's path unless the sender
// has fallen 64 KiB behind), the sender writes that buffer to the current
// segment file (when it needs records to send, or once 16 KiB gather or
// 100 ms pass), reads the records back into the memory queue in order,
// sends them, and moves a cursor past them once the receiver has
// acknowledged them. Segment files wholly behind the cursor are deleted.
// After a restart the sender starts at the cursor: records sent and not yet
// acknowledged go out again (at least once, never lost).
//
// Layout of the directory: NNNNNNNNNNNNNNNNNNNN.seg (segments, numbered in
// order), cursor (segment number, offset, CRC-32C) and lock (held while a
// tap uses the directory; a second tap on it fails at start). Each record
// is its length (4 bytes, little-endian), the CRC-32C of its bytes, and the
// syslog message itself.
//
// The files are not synced: a tap that crashes loses only what was still
// in the buffer (at most 100 ms of events); what is written stays in the
// page cache. A power failure can lose the last writes.

const (
	diskRecordHeader = 8
	diskMaxRecord    = 16 << 20 // far above any record; a larger length is corruption
	diskFlushAt      = 64 << 10 // the logging call writes the buffer itself beyond this
	diskSegmentMax   = 16 << 20
	diskSegmentMin   = 64 << 10
	diskReadBuf      = 64 << 10
	diskCursorSize   = 20
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// ErrDiskQueueInUse means another process holds the disk queue's lock.
var ErrDiskQueueInUse = errors.New("the disk queue is in use by another m365tap")

type diskSeg struct {
	id   uint64
	size int64 // bytes written to the file
}

// diskPos is where a record ends: the sender keeps it per slot and hands it
// to ack once the receiver has acknowledged the record.
type diskPos struct {
	id  uint64
	off int64
}

// diskQueue is used under the shipper's mutex, by the logging call (append)
// and by the sender (everything else).
type diskQueue struct {
	dir    string
	max    int64 // bound on used
	segMax int64
	report func(format string, args ...any)

	lock   *os.File
	cursor *os.File
	segs   []diskSeg // oldest first; the last is the one written
	w      *os.File  // the last segment, opened for appending
	pend   []byte    // records appended and not yet written
	pendN  int
	used   int64 // bytes from the cursor to the end, pend included
	ackOff int64 // the cursor's offset in segs[0]

	// The reader: the next record to hand to the memory queue.
	rIdx    int
	rOff    int64
	rFile   *os.File
	rID     uint64
	rbuf    []byte
	rbufOff int64
}

func segName(dir string, id uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d.seg", id))
}

// openDiskQueue opens (or creates) the queue in dir, bounded to max bytes
// of records not yet acknowledged.
func openDiskQueue(dir string, bound int64, report func(string, ...any)) (*diskQueue, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	d := &diskQueue{dir: dir, max: bound, report: report}
	d.segMax = min(max(bound/8, diskSegmentMin), diskSegmentMax)
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lockFile(lock); err != nil {
		lock.Close()
		return nil, fmt.Errorf("%s: %w (%v)", dir, ErrDiskQueueInUse, err)
	}
	d.lock = lock
	if err := d.load(); err != nil {
		d.close()
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return d, nil
}

// load finds the segments and the cursor, and cuts a record that a crash
// left half-written at the end.
func (d *diskQueue) load() error {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		id, err := strconv.ParseUint(name, 10, 64)
		if err != nil || id == 0 {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		d.segs = append(d.segs, diskSeg{id: id, size: info.Size()})
	}
	slices.SortFunc(d.segs, func(a, b diskSeg) int { return cmpUint(a.id, b.id) })

	if d.cursor, err = os.OpenFile(filepath.Join(d.dir, "cursor"), os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return err
	}
	var c [diskCursorSize]byte
	if n, _ := d.cursor.ReadAt(c[:], 0); n == diskCursorSize &&
		crc32.Checksum(c[:16], crc32c) == binary.LittleEndian.Uint32(c[16:]) {
		id, off := binary.LittleEndian.Uint64(c[:8]), int64(binary.LittleEndian.Uint64(c[8:16]))
		// Segments before the cursor's are acknowledged; the cursor's own
		// is acknowledged up to off.
		for len(d.segs) > 0 && d.segs[0].id < id {
			if err := os.Remove(segName(d.dir, d.segs[0].id)); err != nil {
				return err
			}
			d.segs = d.segs[1:]
		}
		if len(d.segs) > 0 && d.segs[0].id == id {
			d.ackOff = min(off, d.segs[0].size)
		}
	} else if n > 0 {
		// A torn cursor: start from the oldest segment. Records may go
		// out twice; none is lost.
		d.report("disk queue %s: the cursor is damaged; resending from the oldest segment", d.dir)
	}

	if len(d.segs) == 0 {
		d.segs = []diskSeg{{id: 1}}
		f, err := os.OpenFile(segName(d.dir, 1), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		f.Close()
	}
	last := &d.segs[len(d.segs)-1]
	from := int64(0)
	if len(d.segs) == 1 {
		from = d.ackOff
	}
	end, err := validEnd(segName(d.dir, last.id), from, last.size)
	if err != nil {
		return err
	}
	if end < last.size {
		d.report("disk queue %s: cut %d bytes of an unfinished record at the end of segment %d", d.dir, last.size-end, last.id)
		if err := os.Truncate(segName(d.dir, last.id), end); err != nil {
			return err
		}
		last.size = end
	}
	if d.w, err = os.OpenFile(segName(d.dir, last.id), os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return err
	}
	for _, s := range d.segs {
		d.used += s.size
	}
	d.used -= d.ackOff
	d.rIdx, d.rOff = 0, d.ackOff
	return nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// validEnd is the end of the last whole, intact record of a segment, read
// from offset from.
func validEnd(path string, from, size int64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := io.NewSectionReader(f, from, size-from)
	var hdr [diskRecordHeader]byte
	var buf []byte
	end := from
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return end, nil
		}
		n := int64(binary.LittleEndian.Uint32(hdr[:4]))
		if n > diskMaxRecord || end+diskRecordHeader+n > size {
			return end, nil
		}
		buf = slices.Grow(buf[:0], int(n))[:n]
		if _, err := io.ReadFull(r, buf); err != nil || crc32.Checksum(buf, crc32c) != binary.LittleEndian.Uint32(hdr[4:]) {
			return end, nil
		}
		end += diskRecordHeader + n
	}
}

// append adds a record, or says false when the bound leaves no room. It
// writes to the file only when the sender has let 64 KiB pile up.
func (d *diskQueue) append(rec []byte) bool {
	n := int64(diskRecordHeader + len(rec))
	if d.used+n > d.max || len(rec) > diskMaxRecord {
		return false
	}
	d.pend = binary.LittleEndian.AppendUint32(d.pend, uint32(len(rec)))
	d.pend = binary.LittleEndian.AppendUint32(d.pend, crc32.Checksum(rec, crc32c))
	d.pend = append(d.pend, rec...)
	d.pendN++
	d.used += n
	if len(d.pend) >= diskFlushAt {
		d.flush()
	}
	return true
}

// flush writes the appended records to the current segment, starting a
// new one when it is full. It returns how many records could not be
// written (a full or failing disk): they are lost, and the caller counts
// them.
func (d *diskQueue) flush() (lost int) {
	if len(d.pend) == 0 {
		return 0
	}
	last := &d.segs[len(d.segs)-1]
	if last.size >= d.segMax {
		id := last.id + 1
		f, err := os.OpenFile(segName(d.dir, id), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
		if err == nil {
			d.w.Close()
			d.w = f
			d.segs = append(d.segs, diskSeg{id: id})
			last = &d.segs[len(d.segs)-1]
		} else {
			d.report("disk queue %s: %v (writing on in segment %d)", d.dir, err, last.id)
		}
	}
	n, err := d.w.Write(d.pend)
	if err != nil {
		// Keep the file whole: cut what was half written.
		if n > 0 {
			_ = d.w.Truncate(last.size)
		}
		d.report("disk queue %s: %v: %d events lost", d.dir, err, d.pendN)
		lost = d.pendN
		d.used -= int64(len(d.pend))
	} else {
		last.size += int64(n)
	}
	d.pend, d.pendN = d.pend[:0], 0
	if cap(d.pend) > 4*diskFlushAt {
		d.pend = nil
	}
	return lost
}

// unread says whether records wait to be read, pend included.
func (d *diskQueue) unread() bool {
	if len(d.pend) > 0 {
		return true
	}
	return d.rIdx < len(d.segs)-1 || d.rOff < d.segs[len(d.segs)-1].size
}

// next reads the next written record into dst. ok is false when every
// written record has been read.
func (d *diskQueue) next(dst []byte) (rec []byte, end diskPos, ok bool) {
	for d.rIdx < len(d.segs) {
		seg := d.segs[d.rIdx]
		if d.rOff >= seg.size {
			if d.rIdx == len(d.segs)-1 {
				return dst, end, false
			}
			d.rIdx, d.rOff = d.rIdx+1, 0
			continue
		}
		hdr, err := d.readAt(seg, d.rOff, diskRecordHeader)
		var body []byte
		if err == nil {
			n := int64(binary.LittleEndian.Uint32(hdr[:4]))
			sum := binary.LittleEndian.Uint32(hdr[4:])
			if n > diskMaxRecord || d.rOff+diskRecordHeader+n > seg.size {
				err = fmt.Errorf("a record of %d bytes at offset %d", n, d.rOff)
			} else if body, err = d.readAt(seg, d.rOff+diskRecordHeader, n); err == nil && crc32.Checksum(body, crc32c) != sum {
				err = fmt.Errorf("a record whose checksum fails at offset %d", d.rOff)
			}
		}
		if err != nil {
			// What follows in this segment cannot be framed: skip it.
			// The bytes stay counted in used until the cursor passes.
			d.report("disk queue %s: segment %d: %v: skipping its last %d bytes", d.dir, seg.id, err, seg.size-d.rOff)
			d.rOff = seg.size
			continue
		}
		d.rOff += diskRecordHeader + int64(len(body))
		return append(dst[:0], body...), diskPos{id: seg.id, off: d.rOff}, true
	}
	return dst, end, false
}

// readAt returns n bytes of a segment at off, through a read buffer.
func (d *diskQueue) readAt(seg diskSeg, off, n int64) ([]byte, error) {
	if d.rFile == nil || d.rID != seg.id {
		if d.rFile != nil {
			d.rFile.Close()
		}
		f, err := os.Open(segName(d.dir, seg.id))
		if err != nil {
			d.rFile = nil
			return nil, err
		}
		d.rFile, d.rID, d.rbuf = f, seg.id, d.rbuf[:0]
	}
	if off >= d.rbufOff && off+n <= d.rbufOff+int64(len(d.rbuf)) {
		return d.rbuf[off-d.rbufOff : off-d.rbufOff+n], nil
	}
	size := max(n, min(diskReadBuf, seg.size-off))
	if int64(cap(d.rbuf)) < size {
		d.rbuf = make([]byte, size)
	}
	d.rbuf = d.rbuf[:size]
	m, err := d.rFile.ReadAt(d.rbuf, off)
	d.rbuf, d.rbufOff = d.rbuf[:m], off
	if int64(m) < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return d.rbuf[:n], nil
}

// ack moves the cursor to the end of an acknowledged record, deletes the
// segments behind it and saves it.
func (d *diskQueue) ack(p diskPos) {
	for len(d.segs) > 1 && d.segs[0].id < p.id {
		d.used -= d.segs[0].size - d.ackOff
		d.dropHead()
	}
	if d.segs[0].id != p.id || p.off < d.ackOff {
		return
	}
	d.used -= p.off - d.ackOff
	d.ackOff = p.off
	if d.ackOff >= d.segs[0].size && len(d.segs) > 1 && d.rIdx > 0 {
		d.dropHead()
	}
	var c [diskCursorSize]byte
	binary.LittleEndian.PutUint64(c[:8], d.segs[0].id)
	binary.LittleEndian.PutUint64(c[8:16], uint64(d.ackOff))
	binary.LittleEndian.PutUint32(c[16:], crc32.Checksum(c[:16], crc32c))
	if _, err := d.cursor.WriteAt(c[:], 0); err != nil {
		d.report("disk queue %s: saving the cursor: %v (after a restart, events may be sent twice)", d.dir, err)
	}
}

func (d *diskQueue) dropHead() {
	if err := os.Remove(segName(d.dir, d.segs[0].id)); err != nil {
		d.report("disk queue %s: %v", d.dir, err)
	}
	if d.rFile != nil && d.rID == d.segs[0].id {
		d.rFile.Close()
		d.rFile = nil
	}
	d.segs = d.segs[1:]
	d.ackOff = 0
	d.rIdx--
}

// close writes what is appended and releases the files and the lock.
func (d *diskQueue) close() {
	if d.w != nil {
		d.flush()
		d.w.Close()
	}
	if d.rFile != nil {
		d.rFile.Close()
	}
	if d.cursor != nil {
		d.cursor.Close()
	}
	if d.lock != nil {
		unlockFile(d.lock)
		d.lock.Close()
	}
}
