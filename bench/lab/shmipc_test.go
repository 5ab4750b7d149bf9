package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestShmipcClientHangBounded checks that a shmipc-go client that never reports is
// killed once its grace period is over, and its cell reports an error, instead of
// stalling the whole perf run.
func TestShmipcClientHangBounded(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "shmipc-bench")
	script := "#!/bin/sh\necho start\nexec sleep 60\n" // says its clock starts, then hangs
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	defer func(g time.Duration) { shmipcGrace = g }(shmipcGrace)
	shmipcGrace = 200 * time.Millisecond
	b := &shmipcBench{
		bin:    bin,
		stdin:  nopWriteCloser{io.Discard},
		stdout: bufio.NewReader(strings.NewReader("1\n2\n")), // the server's CPU readings
	}
	start := time.Now()
	res := b.measure(context.Background(), 64, 10*time.Millisecond)
	if res.Err == nil {
		t.Fatalf("a hung client gave a result: %+v", res)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("measure returned after %v", took)
	}
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
