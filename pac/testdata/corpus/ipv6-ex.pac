// Windows' IPv6-aware form: FindProxyForURLEx with dnsResolveEx,
// isResolvableEx and isInNetEx. Windows calls it instead of
// FindProxyForURL when both are defined.
function FindProxyForURL(url, host) {
    return "PROXY legacy-only.corp.example:8080";
}
function FindProxyForURLEx(url, host) {
    var addrs = dnsResolveEx(host);
    // The empty-list test comes first: pacparser's isResolvableEx is true
    // for any name, so the comparison only asks it about names that resolve.
    if (addrs == "" || !isResolvableEx(host))
        return "PROXY unresolved.corp.example:8080";
    if (isInNetEx(addrs, "2001:db8:100::/48"))
        return "DIRECT";
    if (isInNetEx(addrs, "10.0.0.0/8") || isInNetEx(addrs, "172.16.0.0/12"))
        return "DIRECT";
    if (isInNetEx(addrs, "20.190.128.0/18"))
        return "DIRECT";
    return "PROXY proxy6.corp.example:8080";
}
