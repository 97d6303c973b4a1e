// Bypass by domain with dnsDomainIs and localHostOrDomainIs, intranet
// names direct, and the NCSI probe sent to an authenticating proxy (a
// mistake this corpus keeps on purpose: it is what pac test must find).
function FindProxyForURL(url, host) {
    if (isPlainHostName(host) || localHostOrDomainIs(host, "intranet.corp.example"))
        return "DIRECT";
    if (dnsDomainIs(host, ".corp.example"))
        return "DIRECT";
    if (dnsDomainIs(host, "www.msftconnecttest.com") || dnsDomainIs(host, ".msftncsi.com"))
        return "PROXY auth-proxy.corp.example:3128";
    if (dnsDomainIs(host, ".microsoftonline.com") || dnsDomainIs(host, ".office.com")
        || dnsDomainIs(host, ".office365.com") || dnsDomainIs(host, ".office.net"))
        return "DIRECT";
    if (url.substring(0, 5) == "http:" && dnsDomainLevels(host) > 3)
        return "PROXY deep.corp.example:8080";
    if (shExpMatch(url, "*/downloads/*"))
        return "PROXY big-files.corp.example:8080; DIRECT";
    return "PROXY proxy.corp.example:8080";
}
