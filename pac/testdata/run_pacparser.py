"""Evaluates one PAC with pacparser for a list of URLs.

Reads JSON on stdin: {"pac": text, "myip": address, "cases": [[url, host], ...]}
and prints a JSON list with, per case, {"answer": text} or {"error": text}.
Used by pac's comparison test; run with Debian's /usr/bin/python3 and its
python3-pacparser module.
"""
import json
import sys

import pacparser

req = json.load(sys.stdin)
# Microsoft's extensions (dnsResolveEx, isResolvableEx, isInNetEx, ...)
# are off unless enabled before init.
pacparser.enable_microsoft_extensions()
pacparser.init()
# myIpAddress() in pacparser resolves this machine's own name; the tap
# answers with the client PC's address. Both are given the same address.
pacparser.setmyip(req["myip"])
# pacparser calls FindProxyForURL only, and has no alert(). Windows calls
# FindProxyForURLEx when the script defines it.
prelude = "var alert = function (m) {};\n"
epilogue = "\nif (typeof FindProxyForURLEx == 'function') { FindProxyForURL = FindProxyForURLEx; }\n"
out = []
try:
    pacparser.parse_pac_string(prelude + req["pac"] + epilogue)
except Exception as e:  # pacparser raises a bare Exception for a bad script
    print(json.dumps([{"error": "parse: " + str(e)}] * len(req["cases"])))
    sys.exit(0)
for url, host in req["cases"]:
    try:
        out.append({"answer": pacparser.find_proxy(url, host)})
    except Exception as e:
        out.append({"error": str(e)})
print(json.dumps(out))
