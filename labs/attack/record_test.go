package attack

import (
	"bytes"
	"strings"
	"testing"

	"github.com/parley-edu/parley/capture"
)

func TestRecordsBothLegs(t *testing.T) {
	tests := []struct {
		scheme string
		want   string // plaintext the capture reader recovers on both legs
	}{
		{"plain", "meet at 9"},
		{"xor", "meet at 9"},
		{"tls", "meet at 9"}, // decrypted with Mallory's own TLS secrets
	}
	for _, tt := range tests {
		t.Run(tt.scheme, func(t *testing.T) {
			rec := capture.NewRecorder()
			defer rec.Close()
			k := labKeys(t, tt.scheme)
			l := newLab(t, tt.scheme, Config{Recorder: rec, Replace: []Replacement{{Old: "at 5", New: "at 9"}}}, k)
			cfg := k.client
			cfg.InsecureSkipVerify = true
			cli := l.cli
			if tt.scheme == "tls" {
				cli = mustScheme(t, tt.scheme, cfg)
			}
			bob := join(t, l.roomAddr, l.cli, "bob")
			alice := join(t, l.relay.Addr().String(), cli, "alice")
			alice.say("meet at 5")
			bob.waitLine("alice: meet at 9")

			var buf bytes.Buffer
			if _, err := rec.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			streams := map[int]map[string]bool{} // stream → plaintexts
			err := capture.Read(&buf, capture.ReadOptions{}, func(e capture.Event) error {
				if e.Type == capture.EventMessage && e.Direction == capture.DirClient {
					if streams[e.StreamID] == nil {
						streams[e.StreamID] = map[string]bool{}
					}
					streams[e.StreamID][strings.TrimSpace(e.Plaintext)] = true
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(streams) != 2 {
				t.Fatalf("streams with client messages: got %d, want 2 (member to Mallory, Mallory to room): %v", len(streams), streams)
			}
			var original, rewritten bool
			for _, texts := range streams {
				original = original || texts["meet at 5"]
				rewritten = rewritten || texts[tt.want]
			}
			if !original || !rewritten {
				t.Errorf("capture: got %v, want %q on one leg and %q on the other", streams, "meet at 5", tt.want)
			}
		})
	}
}
