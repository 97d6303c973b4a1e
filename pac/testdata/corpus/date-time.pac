// Rules by day and time, read in the PC's zone: a maintenance window, an
// office-hours proxy, seasonal rules. Every rule holds at some time of the
// day or year, so the comparison exercises each helper whatever the clock.
function FindProxyForURL(url, host) {
    if (host == "weekday.example") {
        if (weekdayRange("MON", "FRI")) return "PROXY weekday:1";
        return "PROXY weekend:1";
    }
    if (host == "hours.example") {
        if (timeRange(0, 5)) return "PROXY night:1";
        if (timeRange(6, 11)) return "PROXY morning:1";
        if (timeRange(12, 17)) return "PROXY afternoon:1";
        return "PROXY evening:1";
    }
    if (host == "minutes.example") {
        if (timeRange(0, 0, 11, 59)) return "PROXY am:1";
        return "PROXY pm:1";
    }
    if (host == "seconds.example") {
        if (timeRange(0, 0, 0, 11, 59, 59, "GMT")) return "PROXY utc-am:1";
        return "PROXY utc-pm:1";
    }
    if (host == "hour-gmt.example") {
        if (timeRange(0, 11, "GMT")) return "PROXY utc-first-half:1";
        return "PROXY utc-second-half:1";
    }
    if (host == "month-half.example") {
        if (dateRange(1, 15)) return "PROXY first-half:1";
        return "PROXY second-half:1";
    }
    if (host == "season.example") {
        if (dateRange("JAN", "MAR")) return "PROXY q1:1";
        if (dateRange("APR", "JUN")) return "PROXY q2:1";
        if (dateRange("JUL", "SEP")) return "PROXY q3:1";
        return "PROXY q4:1";
    }
    if (host == "span.example") {
        if (dateRange(1, "JAN", 30, "JUN")) return "PROXY h1:1";
        return "PROXY h2:1";
    }
    if (host == "years.example") {
        if (dateRange(2020, 2030)) return "PROXY this-decade:1";
        return "PROXY other:1";
    }
    if (host == "full.example") {
        if (dateRange(1, "JAN", 2026, 31, "DEC", 2026)) return "PROXY y2026:1";
        return "PROXY not-2026:1";
    }
    if (host == "single.example") {
        return "PROXY d" + (dateRange(1) ? "1" : "x") + (dateRange("DEC") ? "-dec" : "-other")
            + (weekdayRange("SUN") ? "-sun" : "") + (weekdayRange("SAT", "GMT") ? "-sat-gmt" : "") + ":1";
    }
    return "DIRECT";
}
