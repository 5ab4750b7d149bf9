package testenv

import (
	"bufio"
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StartTshark captures TCP port port on the loopback interface with tshark (which
// needs root) into a file in a temporary directory, and returns the file and a
// function that waits for the capture to be flushed, then stops it. Decode the
// file with [DissectSMC] after stop.
//
// Verified with TShark (Wireshark) 4.0.17 (Debian 12). Its heuristic TCP dissector
// "smc" recognises CLC messages by their eyecatcher.
func StartTshark(t testing.TB, port int) (file string, stop func()) {
	t.Helper()
	RequireRoot(t)
	tshark := RequireTool(t, "tshark")
	file = filepath.Join(t.TempDir(), "clc.pcapng")
	return file, startTshark(t, tshark, port, file)
}

// tsharkBound bounds a tshark start (until it captures) and a decode: a bound against
// a hang, not a speed target. tshark loads every dissector first, about 2 s of CPU; on
// a loaded machine (CI runs the packages' tests side by side) that took over 10 s.
const tsharkBound = time.Minute

// startTshark starts capturing TCP port port on lo into file and returns a function
// that stops the capture and waits for tshark to exit.
func startTshark(t testing.TB, tshark string, port int, file string) (stop func()) {
	t.Helper()
	cmd := exec.Command(tshark, "-i", "lo", "-f", fmt.Sprintf("tcp port %d", port), "-w", file)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	var header int64
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		waitFlushed(t, file, header)
		cmd.Process.Signal(syscall.SIGINT)
		if err := cmd.Wait(); err != nil {
			t.Errorf("tshark capture: %v", err)
		}
	}
	t.Cleanup(func() {
		if !stopped {
			stopped = true
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var lines []string
		for sc.Scan() {
			// "Capturing on" comes before dumpcap runs; "Capture started" after.
			if strings.Contains(sc.Text(), "Capture started") {
				ready <- nil
				for sc.Scan() {
				}
				return
			}
			lines = append(lines, sc.Text())
		}
		ready <- fmt.Errorf("tshark exited: %s", strings.Join(lines, "; "))
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(tsharkBound):
		t.Fatalf("tshark did not start capturing within %v", tsharkBound)
	}
	if fi, err := os.Stat(file); err == nil {
		header = fi.Size() // the pcapng header blocks, before any packet
	}
	return stop
}

// waitFlushed waits until the capture file has grown past its header and then not
// changed for a while. dumpcap receives packets from the kernel in blocks that are
// handed over when full or when a timeout expires, and a block not yet handed over
// when tshark is interrupted is lost: stopping right after the traffic often leaves
// an empty capture.
func waitFlushed(t testing.TB, file string, header int64) {
	t.Helper()
	const stable = 600 * time.Millisecond
	var size int64 = -1
	changed := time.Now()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		fi, err := os.Stat(file)
		if err != nil {
			continue
		}
		if fi.Size() != size {
			size, changed = fi.Size(), time.Now()
		}
		if size > header && time.Since(changed) >= stable {
			return
		}
	}
	t.Logf("capture file %s still %d bytes after 10s", file, size)
}

// pdmlField is a field of tshark's PDML output.
type pdmlField struct {
	Name   string      `xml:"name,attr"`
	Show   string      `xml:"show,attr"`
	Fields []pdmlField `xml:"field"`
}

type pdmlProto struct {
	Name   string      `xml:"name,attr"`
	Fields []pdmlField `xml:"field"`
}

// SMCMessage is one CLC message as Wireshark decoded it: the first and the last
// value of each field, by field name, and the problems (malformed-packet, warning-
// or error-level expert info) Wireshark reported in its packet.
type SMCMessage struct {
	First, Last map[string]string
	Problems    []string
}

// DissectSMC decodes a capture with tshark and returns the SMC messages in capture
// order, each with the malformed-packet and warning- or error-level expert info of
// its packet. A malformed packet without an SMC message fails the test; TCP's own
// warnings there (a retransmitted FIN, say) are ignored. The
// heuristic SMC dissector is tried first, so CLC on any port is decoded.
func DissectSMC(t testing.TB, file string) []SMCMessage {
	tshark := RequireTool(t, "tshark")
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), tsharkBound)
	defer cancel()
	out, err := exec.CommandContext(ctx, tshark, "-r", file, "-T", "pdml",
		"-o", "tcp.try_heuristic_first:TRUE").Output()
	if err != nil {
		t.Fatalf("tshark -r: %v", err)
	}
	var doc struct {
		Packets []struct {
			Protos []pdmlProto `xml:"proto"`
		} `xml:"packet"`
	}
	if err := xml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("parsing PDML: %v", err)
	}
	var msgs []SMCMessage
	for i, p := range doc.Packets {
		var problems []string
		var walk func(proto string, fs []pdmlField)
		walk = func(proto string, fs []pdmlField) {
			for _, f := range fs {
				if strings.Contains(f.Name, "malformed") {
					problems = append(problems, fmt.Sprintf("%s: %s", f.Name, f.Show))
				}
				if f.Name == "_ws.expert.severity" {
					// epan/proto.h: PI_WARN is 0x00600000, PI_ERROR 0x00800000.
					if sev, err := strconv.ParseUint(f.Show, 0, 32); err != nil || sev >= 0x00600000 {
						problems = append(problems, fmt.Sprintf("expert info in %s, severity %s", proto, f.Show))
					}
				}
				walk(proto, f.Fields)
			}
		}
		first := len(msgs)
		for _, proto := range p.Protos {
			if strings.Contains(proto.Name, "malformed") {
				problems = append(problems, proto.Name)
			}
			walk(proto.Name, proto.Fields)
			if proto.Name != "smc" {
				continue
			}
			m := SMCMessage{First: map[string]string{}, Last: map[string]string{}}
			var collect func(fs []pdmlField)
			collect = func(fs []pdmlField) {
				for _, f := range fs {
					if _, ok := m.First[f.Name]; !ok {
						m.First[f.Name] = f.Show
					}
					m.Last[f.Name] = f.Show
					collect(f.Fields)
				}
			}
			collect(proto.Fields)
			msgs = append(msgs, m)
		}
		if len(msgs) == first && malformed(problems) {
			t.Errorf("packet %d (no SMC message): %v", i+1, problems)
		}
		for j := first; j < len(msgs); j++ {
			msgs[j].Problems = problems
		}
	}
	return msgs
}

// malformed reports whether problems include a malformed packet.
func malformed(problems []string) bool {
	for _, p := range problems {
		if strings.Contains(p, "malformed") {
			return true
		}
	}
	return false
}
