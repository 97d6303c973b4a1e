// Microsoft 365 bypass in the style of the PAC files Microsoft's
// Get-PacFile script writes: the Optimize and Allow sets go direct, the
// rest to the corporate proxy with a fallback.
function FindProxyForURL(url, host)
{
    var direct = "DIRECT";
    var proxyServer = "PROXY proxy.corp.example:8080; PROXY proxy2.corp.example:8080";
    host = host.toLowerCase();

    if (shExpMatch(host, "*.lync.com")
        || shExpMatch(host, "*.teams.microsoft.com")
        || shExpMatch(host, "teams.microsoft.com")
        || shExpMatch(host, "outlook.office.com")
        || shExpMatch(host, "outlook.office365.com")
        || shExpMatch(host, "*.protection.outlook.com")
        || shExpMatch(host, "*.sharepoint.com"))
    {
        return direct;
    }

    if (shExpMatch(host, "login.microsoftonline.com")
        || shExpMatch(host, "login.microsoft.com")
        || shExpMatch(host, "*.officeapps.live.com")
        || shExpMatch(host, "*.online.office.com")
        || shExpMatch(host, "office.live.com")
        || shExpMatch(host, "*.cdn.office.net")
        || shExpMatch(host, "www.office.com")
        || shExpMatch(host, "*.msftidentity.com")
        || shExpMatch(host, "*.msidentity.com"))
    {
        return direct;
    }

    return proxyServer;
}
