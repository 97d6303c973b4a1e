package report

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ReadStats says what Read consumed.
type ReadStats struct {
	// Records counts the JSON records read, of any kind.
	Records int
	// Skipped counts lines that are not JSON objects (a line cut off by a
	// crash, text mixed into the stream); they are left out.
	Skipped int
}

// Read adds every record of a JSON-lines log to a. A gzip stream (a
// rotated file that log.compress compressed) is recognised by its magic
// bytes and decompressed, so callers need not look at file names.
func (a *Aggregate) Read(r io.Reader) (ReadStats, error) {
	var st ReadStats
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return st, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: collect it whole.
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if len(bytes.TrimSpace(line)) > 0 {
			var rec Record
			if json.Unmarshal(line, &rec) != nil || rec.Msg == "" {
				st.Skipped++
			} else {
				st.Records++
				a.Add(&rec)
			}
		}
		if err == io.EOF {
			return st, nil
		}
		if err != nil {
			return st, err
		}
	}
}
