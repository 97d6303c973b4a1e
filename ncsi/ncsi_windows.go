package ncsi

import (
	"errors"

	"golang.org/x/sys/windows/registry"
)

// System is the Source of this PC's registry (HKLM, 64-bit view).
func System() (Source, error) { return hklm{}, nil }

type hklm struct{}

func (hklm) open(key string) (registry.Key, bool, error) {
	k, err := registry.OpenKey(registry.LOCAL_MACHINE, key, registry.QUERY_VALUE|registry.WOW64_64KEY)
	if errors.Is(err, registry.ErrNotExist) {
		return 0, false, nil
	}
	return k, err == nil, err
}

func (h hklm) String(key, name string) (string, bool, error) {
	k, ok, err := h.open(key)
	if !ok {
		return "", false, err
	}
	defer k.Close()
	v, _, err := k.GetStringValue(name)
	if errors.Is(err, registry.ErrNotExist) {
		return "", false, nil
	}
	return v, err == nil, err
}

func (h hklm) DWORD(key, name string) (uint32, bool, error) {
	k, ok, err := h.open(key)
	if !ok {
		return 0, false, err
	}
	defer k.Close()
	v, _, err := k.GetIntegerValue(name)
	if errors.Is(err, registry.ErrNotExist) {
		return 0, false, nil
	}
	return uint32(v), err == nil, err
}
