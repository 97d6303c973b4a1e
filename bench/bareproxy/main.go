// Command bareproxy is the baseline the tap is measured against: goproxy's
// forward proxy exactly as goproxy.NewProxyHttpServer() builds it, with no
// handlers and no setting changed (its Transport keeps 2 idle connections
// per host, its warnings go to stderr). Its default Transport and CONNECT
// dialer read HTTP_PROXY/HTTPS_PROXY, so the harness starts it with every
// proxy variable removed from its environment.
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/elazarl/goproxy"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:18180", "listen address")
	flag.Parse()
	p := goproxy.NewProxyHttpServer()
	log.Printf("bareproxy listening on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, p))
}
