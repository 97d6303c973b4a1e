// Command tunnelbulk pushes bytes through a CONNECT tunnel of a running tap
// and reports the rate: downloads from its own loopback source, or with -up
// uploads to its own loopback sink. The tap process does nothing but
// forward, which is what bench/splice.sh traces.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	proxyAddr := flag.String("proxy", "127.0.0.1:8080", "tap address")
	size := flag.Int64("bytes", 256<<20, "bytes per tunnel")
	tunnels := flag.Int("n", 1, "tunnels, one after another")
	source := flag.String("source", "127.0.0.1:18090", "where the byte source (or sink) listens (the tap must allow its port)")
	up := flag.Bool("up", false, "upload: the client sends, the far end counts")
	flag.Parse()

	ln, err := net.Listen("tcp", *source)
	if err != nil {
		fail(err)
	}
	chunk := make([]byte, 256<<10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if *up {
					// Count what arrives, then answer with the count.
					n, _ := io.CopyBuffer(io.Discard, c, make([]byte, 256<<10))
					fmt.Fprintf(c, "%d", n)
					return
				}
				for left := *size; left > 0; {
					n := min(left, int64(len(chunk)))
					if _, err := c.Write(chunk[:n]); err != nil {
						return
					}
					left -= n
				}
			}()
		}
	}()

	start := time.Now()
	for i := 0; i < *tunnels; i++ {
		c, err := net.Dial("tcp", *proxyAddr)
		if err != nil {
			fail(err)
		}
		target := ln.Addr().String()
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
		br := bufio.NewReaderSize(c, 256<<10)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil || resp.StatusCode != 200 {
			fail(fmt.Errorf("CONNECT: %v %v", resp, err))
		}
		if *up {
			for left := *size; left > 0; {
				n := min(left, int64(len(chunk)))
				if _, err := c.Write(chunk[:n]); err != nil {
					fail(err)
				}
				left -= n
			}
			_ = c.(*net.TCPConn).CloseWrite()
			got, err := io.ReadAll(br)
			if err != nil || string(got) != fmt.Sprint(*size) {
				fail(fmt.Errorf("far end counted %q of %d: %v", got, *size, err))
			}
		} else {
			n, err := io.CopyBuffer(io.Discard, br, make([]byte, 256<<10))
			if err != nil || n != *size {
				fail(fmt.Errorf("read %d of %d: %v", n, *size, err))
			}
		}
		c.Close()
	}
	el := time.Since(start)
	total := float64(*size) * float64(*tunnels)
	fmt.Printf("tunnels=%d bytes=%d seconds=%.3f MB/s=%.1f\n", *tunnels, int64(total), el.Seconds(), total/el.Seconds()/1e6)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tunnelbulk:", err)
	os.Exit(1)
}
