//go:build !windows

package winetest

// IsWine is false: wine runs only Windows binaries.
func IsWine() bool { return false }
