package smc

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestHandshakeContext: the handshake's context ends at its deadline, when its
// parent ends and when cancelled, whichever comes first, with the matching error,
// whether Done was called before or after; and it arms no timer until Done is
// called.
func TestHandshakeContext(t *testing.T) {
	for _, tc := range []struct {
		name      string
		deadline  time.Duration // from now
		doneFirst bool          // call Done before the end
		end       func(h *handshakeContext, cancelParent context.CancelFunc)
		want      error
	}{
		{"deadline-passed", -time.Second, false, nil, context.DeadlineExceeded},
		{"deadline-passed-done", -time.Second, true, nil, context.DeadlineExceeded},
		{"deadline-waited", 20 * time.Millisecond, true, nil, context.DeadlineExceeded},
		{"parent-cancelled", time.Hour, false, func(_ *handshakeContext, cp context.CancelFunc) { cp() }, context.Canceled},
		{"parent-cancelled-done", time.Hour, true, func(_ *handshakeContext, cp context.CancelFunc) { cp() }, context.Canceled},
		{"cancelled", time.Hour, false, func(h *handshakeContext, _ context.CancelFunc) { h.cancel(errClosedHandshake) }, errClosedHandshake},
		{"cancelled-done", time.Hour, true, func(h *handshakeContext, _ context.CancelFunc) { h.cancel(errClosedHandshake) }, errClosedHandshake},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, cancelParent := context.WithCancel(context.Background())
			defer cancelParent()
			dl := time.Now().Add(tc.deadline)
			h := new(handshakeContext)
			h.start(parent, dl, nopInterrupter{})
			if d, ok := h.Deadline(); !ok || !d.Equal(dl) {
				t.Fatalf("Deadline() = %v, %v; want %v, true", d, ok, dl)
			}
			var done <-chan struct{}
			if tc.doneFirst {
				done = h.Done()
			}
			if tc.deadline > 0 && !tc.doneFirst {
				if h.Err() != nil {
					t.Fatalf("Err() = %v before the end", h.Err())
				}
				if h.timer != nil {
					t.Fatal("a timer was armed before Done was called")
				}
			}
			if tc.end != nil {
				tc.end(h, cancelParent)
			}
			if done == nil {
				done = h.Done()
			}
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Done not closed")
			}
			if err := h.Err(); !errors.Is(err, tc.want) {
				t.Fatalf("Err() = %v, want %v", err, tc.want)
			}
			h.cancel(context.Canceled) // a second end changes nothing
			if err := h.Err(); !errors.Is(err, tc.want) {
				t.Fatalf("Err() after a second cancel = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestHandshakeContextValue: values come from the parent.
func TestHandshakeContextValue(t *testing.T) {
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "v")
	h := new(handshakeContext)
	h.start(parent, time.Now().Add(time.Hour), nopInterrupter{})
	defer h.cancel(context.Canceled)
	if v := h.Value(key{}); v != "v" {
		t.Fatalf("Value = %v, want v", v)
	}
}

// nopInterrupter is an interrupter that does nothing.
type nopInterrupter struct{}

func (nopInterrupter) interruptHandshake(*handshakeContext) {}
