// A script that fails for some hosts only: a typo in one branch.
function FindProxyForURL(url, host) {
    if (dnsDomainIs(host, ".partner.example") || host == "partner.example")
        return proxyForPartner(host);   // never defined
    if (host == "throws.example")
        throw "no rule for " + host;
    return "DIRECT";
}
