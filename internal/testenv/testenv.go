// Package testenv finds what infergate's tests need from the machine: the
// repository root and the ONNX Runtime shared library that `make setup`
// installs there.
package testenv

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// RepoRoot returns the directory holding go.mod, searched upwards from the
// working directory of the test.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatalf("cannot get working directory: %s", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatalf("cannot find go.mod above the test's directory")
		}
		dir = parent
	}
}

// ORTLib returns the path of the ONNX Runtime shared library: the
// INFERGATE_ORT_LIB environment variable when set, else lib/libonnxruntime.so.1
// under the repository root. It fails the test when the file is missing,
// because every test that asks for it means to run the real runtime.
func ORTLib(tb testing.TB) string {
	tb.Helper()
	p := os.Getenv("INFERGATE_ORT_LIB")
	if p == "" {
		p = filepath.Join(RepoRoot(tb), "lib", "libonnxruntime.so.1")
	}
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("ONNX Runtime library not found at %s; run `make setup`: %s", p, err)
	}
	return p
}

// CheckFor calls fn until it returns nil or d has passed, then fails the
// test with fn's last error: polling instead of a fixed sleep.
func CheckFor(tb testing.TB, d time.Duration, fn func() error) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// FreeAddr returns a loopback address whose port was free a moment ago,
// for a server that must be told its address before it listens (a raft
// transport, a node restarted on the same address).
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// SilentAddr returns the address of a loopback listener that accepts
// connections and never answers on them, as a process that hangs after
// accept; the test's cleanup closes it and them.
func SilentAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}
