package sysproxy

import (
	"errors"
	"strings"
	"testing"
)

const isolationList = "\r\nList Loopback Exempted AppContainers\r\n\r\n[1] -----------------------------------------------------------------\r\n    Name: microsoft.aad.brokerplugin_cw5n1h2txyewy\r\n    SID:  S-1-15-2-3227041264-1234\r\n\r\nOK.\r\n"

func TestNetIsolation(t *testing.T) {
	var calls []string
	n := NetIsolation{Run: func(args ...string) (string, error) {
		calls = append(calls, strings.Join(args, " "))
		switch args[1] {
		case "-s":
			return isolationList, nil
		case "-a":
			return "Error: Access is denied. (0x80070005)", errors.New("exit status 5")
		}
		return "OK.", nil
	}}
	if ok, err := n.IsExempt(BrokerPackage); !ok || err != nil {
		t.Errorf("IsExempt: %v %v, want true", ok, err)
	}
	if ok, _ := n.IsExempt("Microsoft.Win32WebViewHost_cw5n1h2txyewy"); ok {
		t.Error("an unlisted package is exempt")
	}
	if err := n.Add(BrokerPackage); !errors.Is(err, ErrNeedsElevation) {
		t.Errorf("Add without elevation: %v", err)
	}
	if err := n.Remove(BrokerPackage); err != nil {
		t.Errorf("Remove: %v", err)
	}
	want := "LoopbackExempt -s|LoopbackExempt -s|LoopbackExempt -a -n=" + BrokerPackage + "|LoopbackExempt -d -n=" + BrokerPackage
	if got := strings.Join(calls, "|"); got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
}
