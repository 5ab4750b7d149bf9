package signal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/smc-go/smc/internal/testenv"
)

// roleEnv selects a child process's role in TestMain.
const roleEnv = "SMC_SIGNAL_TEST_ROLE"

func TestMain(m *testing.M) {
	countCacheHits = true
	if os.Getenv(roleEnv) == "unprivileged" {
		if err := unprivilegedChild(); err != nil {
			fmt.Println("child:", err)
			os.Exit(1)
		}
		fmt.Println("child: ok")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestUnprivileged prepares a child cgroup with AttachCgroup (group 65534), then
// runs this test binary as user and group 65534 with no capabilities inside it: the
// child must open the pinned objects, mark, and read exact results.
func TestUnprivileged(t *testing.T) {
	testenv.RequireBPF(t)
	dir := testenv.ChildCgroup(t)
	pins, err := AttachCgroup(dir, AttachOptions{Group: fmt.Sprint(testenv.Nobody)})
	if err != nil {
		t.Fatalf("AttachCgroup: %v", err)
	}
	t.Cleanup(func() {
		if err := DetachCgroup(dir); err != nil {
			t.Errorf("DetachCgroup: %v", err)
		}
		if _, err := os.Stat(pins); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pins left at %s: %v", pins, err)
		}
	})
	if _, err := AttachCgroup(dir, AttachOptions{}); !errors.Is(err, os.ErrExist) {
		t.Errorf("second AttachCgroup: %v, want an error wrapping os.ErrExist", err)
	}

	cmd := testenv.UnprivilegedTest(t, "TestUnprivileged", roleEnv+"=unprivileged")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("child output:\n%s", out.String())
	if err != nil || !strings.Contains(out.String(), "child: ok") {
		t.Fatalf("unprivileged child: %v", err)
	}
}

// unprivilegedChild runs as user 65534 without capabilities inside the prepared
// cgroup.
func unprivilegedChild() error {
	if os.Geteuid() != testenv.Nobody {
		return fmt.Errorf("running as uid %d", os.Geteuid())
	}
	if caps, err := capEff(); err != nil || caps != 0 {
		return fmt.Errorf("effective capabilities %#x (%v), want none", caps, err)
	}
	if err := mapCreateProbe(); err == nil {
		return errors.New("could create a map: not unprivileged")
	}
	s, err := Open()
	if err != nil {
		return err
	}
	defer s.Close()
	if !strings.HasPrefix(s.Mode(), "pinned at ") {
		return fmt.Errorf("mode %q, want pinned", s.Mode())
	}
	fmt.Println("child: opened,", s.Mode())
	t := &childTB{}
	for _, tc := range []struct{ client, server bool }{{true, true}, {true, false}, {false, true}, {false, false}} {
		ln := listen(t, s, "tcp4", "127.0.0.1:0", tc.server, false)
		c := dial(t, s, "tcp4", ln.Addr().String(), tc.client, nil)
		sc, err := ln.Accept()
		if err != nil {
			return err
		}
		cr, sr := resultOf(t, s, c), acceptedOf(t, s, sc, tc.server)
		exchange(t, c, sc, false)
		ln.Close()
		both := tc.client && tc.server
		wantClient, wantServer := Result{}, Result{}
		if tc.client {
			wantClient = Result{Marked: true, Sent: true, Received: both}
		}
		if tc.server {
			wantServer = Result{Marked: true, Sent: both, Received: both}
		}
		if cr != wantClient || sr != wantServer {
			return fmt.Errorf("client %v server %v: got %+v and %+v, want %+v and %+v", tc.client, tc.server, cr, sr, wantClient, wantServer)
		}
		if t.failed != nil {
			return t.failed
		}
	}
	if _, err := s.Stats(); err != nil {
		return fmt.Errorf("counters: %w", err)
	}
	if s.slots == nil || s.cacheHits.Load() != 4 {
		return fmt.Errorf("results cache mapped %v (%v), %d answers from it, want 4", s.slots != nil, s.cacheErr, s.cacheHits.Load())
	}
	return nil
}

// childTB lets the test helpers run outside a test; a failure panics with its
// message, which unprivilegedChild does not recover: the child exits non-zero.
type childTB struct {
	testing.TB
	failed error
}

func (c *childTB) Helper()                   {}
func (c *childTB) Cleanup(f func())          {}
func (c *childTB) Fatal(a ...any)            { panic(fmt.Sprint(a...)) }
func (c *childTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (c *childTB) Errorf(f string, a ...any) { c.failed = fmt.Errorf(f, a...) }
