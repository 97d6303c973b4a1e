package winetest

import "syscall"

// IsWine reports running under wine, which exports wine_get_version from
// its ntdll.dll; Windows' ntdll.dll has no such function.
func IsWine() bool {
	ntdll, err := syscall.LoadDLL("ntdll.dll")
	if err != nil {
		return false
	}
	_, err = ntdll.FindProc("wine_get_version")
	return err == nil
}
