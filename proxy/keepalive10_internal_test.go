package proxy

import "testing"

func TestProxyConnection10(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"http/1.0 with proxy-connection",
			"GET http://h/ HTTP/1.0\r\nHost: h\r\nProxy-Connection: Keep-Alive\r\n\r\n",
			"GET http://h/ HTTP/1.0\r\nHost: h\r\nConnection:       Keep-Alive\r\n\r\n"},
		{"lower case",
			"GET http://h/ HTTP/1.0\r\nproxy-connection: keep-alive\r\nHost: h\r\n\r\n",
			"GET http://h/ HTTP/1.0\r\nConnection:       keep-alive\r\nHost: h\r\n\r\n"},
		{"its own connection field wins",
			"GET http://h/ HTTP/1.0\r\nConnection: close\r\nProxy-Connection: Keep-Alive\r\n\r\n",
			"GET http://h/ HTTP/1.0\r\nConnection: close\r\nProxy-Connection: Keep-Alive\r\n\r\n"},
		{"http/1.1 untouched",
			"GET http://h/ HTTP/1.1\r\nProxy-Connection: Keep-Alive\r\n\r\n",
			"GET http://h/ HTTP/1.1\r\nProxy-Connection: Keep-Alive\r\n\r\n"},
		{"close asked for",
			"GET http://h/ HTTP/1.0\r\nProxy-Connection: close\r\n\r\n",
			"GET http://h/ HTTP/1.0\r\nProxy-Connection: close\r\n\r\n"},
		{"head not complete in this read",
			"GET http://h/ HTTP/1.0\r\nProxy-Connection: Keep-Alive\r\n",
			"GET http://h/ HTTP/1.0\r\nProxy-Connection: Keep-Alive\r\n"},
		{"body bytes are not fields",
			"POST http://h/ HTTP/1.0\r\nContent-Length: 30\r\n\r\nProxy-Connection: keep-alive\r\n",
			"POST http://h/ HTTP/1.0\r\nContent-Length: 30\r\n\r\nProxy-Connection: keep-alive\r\n"},
		{"not a request line", "\r\n\r\n", "\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.in)
			proxyConnection10(b)
			if string(b) != tc.want {
				t.Errorf("got  %q\nwant %q", b, tc.want)
			}
		})
	}
}
