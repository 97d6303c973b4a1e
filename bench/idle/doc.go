// Package idle holds a benchmark of what an idle CONNECT tunnel keeps alive
// in the tap and in bare goproxy, in process: heap in use, goroutines and
// goroutine stack per tunnel, after a forced GC. It complements the RSS the
// harness (bench/run.sh) reads from outside, by saying where the bytes
// are. There is no non-test code here.
package idle
