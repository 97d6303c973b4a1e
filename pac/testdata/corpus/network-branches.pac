// Branches on the client's own subnet (myIpAddress) and on the address a
// name resolves to (isInNet, dnsResolve, isResolvable), as site-specific
// PACs do: branch offices use their local proxy, VPN clients go direct to
// Microsoft 365, private destinations go direct.
function FindProxyForURL(url, host) {
    var me = myIpAddress();
    if (isInNet(host, "10.0.0.0", "255.0.0.0") || isInNet(host, "172.16.0.0", "255.240.0.0")
        || isInNet(host, "192.168.0.0", "255.255.0.0") || isInNet(host, "127.0.0.0", "255.0.0.0"))
        return "DIRECT";
    if (!isResolvable(host))
        return "PROXY resolver-less.corp.example:8080";
    if (isInNet(me, "10.50.0.0", "255.255.0.0")) {
        // VPN pool: Microsoft 365 direct (split tunnel), the rest home.
        if (isInNet(dnsResolve(host), "20.190.128.0", "255.255.192.0")
            || isInNet(dnsResolve(host), "52.96.0.0", "255.252.0.0"))
            return "DIRECT";
        return "PROXY vpn-proxy.corp.example:8080";
    }
    if (isInNet(me, "10.60.0.0", "255.255.0.0"))
        return "PROXY branch-osaka.corp.example:8080; PROXY proxy.corp.example:8080";
    if (convert_addr(me) < 0)
        return "PROXY high-addresses.corp.example:8080";
    return "PROXY proxy.corp.example:8080; DIRECT";
}
