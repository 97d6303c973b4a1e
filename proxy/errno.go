package proxy

import (
	"errors"
	"net"
	"strings"
	"syscall"
)

// netFault is what a socket or resolver error code means to the tap,
// whichever system numbered it. Linux says ECONNREFUSED (111) where Windows
// says WSAECONNREFUSED (10061), and Go's syscall.ECONNREFUSED on Windows is
// an invented number no socket call ever returns (issue 12: every refused
// connection was logged connect_unreachable there), so outcomes are drawn
// from the meaning, looked up in the running system's table.
type netFault uint8

const (
	faultNone        netFault = iota
	faultRefused              // nothing listens: the peer answered with a reset to the SYN
	faultReset                // the peer reset an established connection
	faultAborted              // the connection was torn down locally (EPIPE, ECONNABORTED)
	faultUnreachable          // no route, network down, address not usable
	faultTimeout              // the system gave up waiting (SYN retries, keepalives)
	faultNoFDs                // the tap's own descriptor limit (EMFILE)
	faultNoFDsSystem          // the system-wide descriptor limit (ENFILE)
	faultNoSuchHost           // the resolver: no such name, or no address records
	faultDNSFailure           // the resolver: SERVFAIL-like, try again later, no recovery
	faultDNSTimeout           // the resolver gave up waiting for the servers
)

// faultTable maps a system's error codes to their meaning. Socket codes
// arrive as a syscall.Errno in the error chain; resolver codes reach the
// tap only as text inside a *net.DNSError (Go keeps no Errno there), so
// those are matched by the code's own message, which the system formats in
// its display language the same way both times.
type faultTable struct {
	socket   map[syscall.Errno]netFault
	resolver []resolverCode
}

type resolverCode struct {
	errno syscall.Errno
	fault netFault
}

// fault returns the meaning of the first syscall.Errno in err's chain.
func (t *faultTable) fault(err error) netFault {
	var errno syscall.Errno
	if err == nil || !errors.As(err, &errno) {
		return faultNone
	}
	return t.socket[errno]
}

// dnsFault returns the meaning of a resolver error code named in a
// DNSError's text, for systems whose resolver Go reports as text only.
func (t *faultTable) dnsFault(de *net.DNSError) netFault {
	for _, c := range t.resolver {
		if strings.HasSuffix(de.Err, c.errno.Error()) {
			return c.fault
		}
	}
	return faultNone
}

// unixFaults is Linux's and the BSDs' table. Go's own resolver sets
// DNSError's IsNotFound and IsTimeout itself there, so it has no resolver
// codes.
var unixFaults = faultTable{
	socket: map[syscall.Errno]netFault{
		syscall.ECONNREFUSED:  faultRefused,
		syscall.ECONNRESET:    faultReset,
		syscall.EPIPE:         faultAborted,
		syscall.ECONNABORTED:  faultAborted,
		syscall.ENETUNREACH:   faultUnreachable,
		syscall.EHOSTUNREACH:  faultUnreachable,
		syscall.EADDRNOTAVAIL: faultUnreachable,
		syscall.ENETDOWN:      faultUnreachable,
		syscall.EHOSTDOWN:     faultUnreachable,
		syscall.ETIMEDOUT:     faultTimeout,
		syscall.EMFILE:        faultNoFDs,
		syscall.ENFILE:        faultNoFDsSystem,
	},
}

// Windows Sockets and Win32 codes (winerror.h). Declared here rather than
// taken from golang.org/x/sys/windows so that the table also compiles, and
// is tested, on Linux.
const (
	errorNetnameDeleted     = syscall.Errno(64)   // ERROR_NETNAME_DELETED: an overlapped read on a reset socket
	errorSemTimeout         = syscall.Errno(121)  // ERROR_SEM_TIMEOUT: an overlapped ConnectEx that timed out
	errorConnectionRefused  = syscall.Errno(1225) // ERROR_CONNECTION_REFUSED
	errorNetworkUnreachable = syscall.Errno(1231) // ERROR_NETWORK_UNREACHABLE
	errorHostUnreachable    = syscall.Errno(1232) // ERROR_HOST_UNREACHABLE
	errorConnectionAborted  = syscall.Errno(1236) // ERROR_CONNECTION_ABORTED
	errorTimeout            = syscall.Errno(1460) // ERROR_TIMEOUT
	dnsErrorRcodeFormat     = syscall.Errno(9001) // DNS_ERROR_RCODE_FORMAT_ERROR
	dnsErrorRcodeServFail   = syscall.Errno(9002) // DNS_ERROR_RCODE_SERVER_FAILURE
	dnsErrorRcodeNameError  = syscall.Errno(9003) // DNS_ERROR_RCODE_NAME_ERROR
	dnsErrorRcodeRefused    = syscall.Errno(9005) // DNS_ERROR_RCODE_REFUSED
	dnsInfoNoRecords        = syscall.Errno(9501) // DNS_INFO_NO_RECORDS
	wsaEMFILE               = syscall.Errno(10024)
	wsaENETDOWN             = syscall.Errno(10050)
	wsaENETUNREACH          = syscall.Errno(10051)
	wsaENETRESET            = syscall.Errno(10052)
	wsaECONNABORTED         = syscall.Errno(10053)
	wsaECONNRESET           = syscall.Errno(10054)
	wsaENOBUFS              = syscall.Errno(10055)
	wsaESHUTDOWN            = syscall.Errno(10058)
	wsaETIMEDOUT            = syscall.Errno(10060)
	wsaECONNREFUSED         = syscall.Errno(10061)
	wsaEHOSTDOWN            = syscall.Errno(10064)
	wsaEHOSTUNREACH         = syscall.Errno(10065)
	wsaEADDRNOTAVAIL        = syscall.Errno(10049)
	wsaHostNotFound         = syscall.Errno(11001) // WSAHOST_NOT_FOUND: authoritative "no such host"
	wsaTryAgain             = syscall.Errno(11002) // WSATRY_AGAIN: no authoritative answer, or SERVFAIL
	wsaNoRecovery           = syscall.Errno(11003) // WSANO_RECOVERY: a non-recoverable resolver failure
	wsaNoData               = syscall.Errno(11004) // WSANO_DATA: the name exists, without address records
)

// windowsFaults is Windows' table. The Win32 codes appear where Go reads
// an overlapped socket operation's result with GetOverlappedResult rather
// than WSAGetOverlappedResult, and from wine.
var windowsFaults = faultTable{
	socket: map[syscall.Errno]netFault{
		wsaECONNREFUSED:         faultRefused,
		errorConnectionRefused:  faultRefused,
		wsaECONNRESET:           faultReset,
		wsaENETRESET:            faultReset,
		errorNetnameDeleted:     faultReset,
		wsaECONNABORTED:         faultAborted,
		wsaESHUTDOWN:            faultAborted,
		errorConnectionAborted:  faultAborted,
		wsaENETUNREACH:          faultUnreachable,
		wsaEHOSTUNREACH:         faultUnreachable,
		wsaENETDOWN:             faultUnreachable,
		wsaEHOSTDOWN:            faultUnreachable,
		wsaEADDRNOTAVAIL:        faultUnreachable,
		errorNetworkUnreachable: faultUnreachable,
		errorHostUnreachable:    faultUnreachable,
		wsaETIMEDOUT:            faultTimeout,
		errorSemTimeout:         faultTimeout,
		errorTimeout:            faultTimeout,
		// WSAENOBUFS is what Windows returns when it has no memory left for
		// another socket, its nearest thing to ENFILE.
		wsaEMFILE:  faultNoFDs,
		wsaENOBUFS: faultNoFDsSystem,
	},
	// Go's resolver on Windows (GetAddrInfoW, DnsQuery) turns only
	// WSAHOST_NOT_FOUND, DNS_ERROR_RCODE_NAME_ERROR and DNS_INFO_NO_RECORDS
	// into IsNotFound; WSANO_DATA, which Linux's resolver reports as "no
	// such host" too, would otherwise read as dns_failure.
	resolver: []resolverCode{
		{wsaHostNotFound, faultNoSuchHost},
		{wsaNoData, faultNoSuchHost},
		{dnsErrorRcodeNameError, faultNoSuchHost},
		{dnsInfoNoRecords, faultNoSuchHost},
		{wsaTryAgain, faultDNSFailure},
		{wsaNoRecovery, faultDNSFailure},
		{dnsErrorRcodeServFail, faultDNSFailure},
		{dnsErrorRcodeRefused, faultDNSFailure},
		{dnsErrorRcodeFormat, faultDNSFailure},
		{wsaETIMEDOUT, faultDNSTimeout},
		{errorTimeout, faultDNSTimeout},
	},
}
