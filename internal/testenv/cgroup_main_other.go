//go:build !linux

package testenv

// EnterChildCgroup fails: cgroups exist only on Linux.
func EnterChildCgroup() (dir string, leave func() error, err error) { return "", nil, errNotLinux }
