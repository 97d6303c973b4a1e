// A script that never answers for one host.
function FindProxyForURL(url, host) {
    if (host == "loop.example") {
        var i = 0;
        while (true) { i++; }
    }
    return "DIRECT";
}
