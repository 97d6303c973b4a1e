package proxy

func osTable() string { return "windows" }
