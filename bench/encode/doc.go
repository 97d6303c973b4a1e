// Package encode holds benchmarks of the cost of one exchange event: the
// tap serves real exchanges on loopback, the events it emits are captured
// as zap hands them to a core, and the benchmarks encode those same events
// again and again (JSON encoder alone, the whole logger call, and the
// logger the tap builds with logs.New writing to a file). There is no
// non-test code here.
package encode
