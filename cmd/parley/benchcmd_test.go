package main

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"

	"github.com/parley-edu/parley/labs/scenario"
)

// TestBenchJSONSmoke runs 'parley bench --json' with small numbers.
func TestBenchJSONSmoke(t *testing.T) {
	r := runParley(t, "", "bench", "--json", "--scheme", "plain,aes-cbc-hmac,tls", "--clients", "3", "--messages", "10", "--handshakes", "5")
	if r.code != 0 {
		t.Fatalf("parley bench: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	var got []scenario.BenchResult
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		var b scenario.BenchResult
		if err := json.Unmarshal(sc.Bytes(), &b); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, b)
	}
	if len(got) != 3 {
		t.Fatalf("results: got %d, want 3\n%s", len(got), r.stdout)
	}
	for _, b := range got {
		if b.Deliveries != 3*2*10 || b.DeliveriesPerSec <= 0 || b.HandshakeP50 <= 0 || b.LatencyP99 <= 0 {
			t.Errorf("%s: implausible result %+v", b.Scheme, b)
		}
		if len(b.Wire) != 3 || b.Wire[0].Size != 16 || b.Wire[0].Overhead < 1 {
			t.Errorf("%s: wire costs %+v", b.Scheme, b.Wire)
		}
	}
}

func TestBenchTable(t *testing.T) {
	r := runParley(t, "", "bench", "--scheme", "xor", "--clients", "2", "--messages", "5", "--handshakes", "2")
	if r.code != 0 {
		t.Fatalf("parley bench: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"scheme", "xor", "4096 B", "deliv/s"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, r.stdout)
		}
	}
	if r2 := runParley(t, "", "bench", "--clients", "1"); r2.code != 2 {
		t.Errorf("--clients 1: got exit %d, want 2", r2.code)
	}
}
