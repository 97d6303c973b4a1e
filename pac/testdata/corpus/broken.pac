// A script that does not compile: a brace is missing.
function FindProxyForURL(url, host) {
    if (shExpMatch(host, "*.office.com") {
        return "DIRECT";
    }
    return "PROXY proxy.corp.example:8080";
}
