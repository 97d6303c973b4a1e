// Answers of every shape the parser meets: failover lists, HTTPS and SOCKS
// hops, odd spacing and case, a trailing semicolon.
function FindProxyForURL(url, host) {
    if (host == "list.example") return "PROXY a.corp.example:8080; PROXY b.corp.example:8080; DIRECT";
    if (host == "https.example") return "HTTPS secure-proxy.corp.example:443";
    if (host == "socks.example") return "SOCKS5 socks.corp.example:1080; DIRECT";
    if (host == "spacing.example") return "  proxy   p.corp.example:3128 ;direct;";
    if (host == "noport.example") return "PROXY p.corp.example";
    return "DIRECT";
}
