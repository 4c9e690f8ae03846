package capture

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// streamBytes returns what each side of the first stream of a testdata
// capture sent, reassembled.
func streamBytes(t testing.TB, name string) (client, server []byte) {
	t.Helper()
	evs, err := ReadFile(filepath.Join("testdata", name), ReadOptions{Scheme: "unknown"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Type != EventMessage || e.StreamID != 1 {
			continue
		}
		if e.Direction == DirClient {
			client = append(client, e.Wire...)
		} else {
			server = append(server, e.Wire...)
		}
	}
	return client, server
}

// dissectAll feeds client and server bytes, interleaved in chunks, to a
// fresh dissector for scheme and returns the events.
func dissectAll(t testing.TB, scheme string, opts ReadOptions, mid bool, client, server []byte) []Event {
	var evs []Event
	rd := newReader(opts, func(e Event) error { evs = append(evs, e); return nil })
	s := &stream{rd: rd, id: 1, name: "c-s", scheme: scheme, midStream: mid}
	d := newDissector(scheme, s)
	s.d = d
	now := time.Unix(1700000000, 0)
	for len(client) > 0 || len(server) > 0 {
		n := min(len(server), 700)
		d.data(Server, now, server[:n])
		server = server[n:]
		n = min(len(client), 500)
		d.data(Client, now, client[:n])
		client = client[n:]
	}
	d.gap(Client, now, 3)
	d.data(Client, now, []byte{0x17, 3, 3, 0, 1, 0})
	d.end(now)
	return evs
}

func FuzzReadCapture(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.pcapng")
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	b := newPcap(linkSLL2)
	for _, s := range conversationSegs() {
		b.add(&testing.T{}, s)
	}
	f.Add(b.buf.Bytes())
	psk := testPSK(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		Read(bytes.NewReader(data), ReadOptions{PSK: psk}, func(Event) error { return nil })
	})
}

func FuzzDissectTLSHandshake(f *testing.F) {
	c, s := streamBytes(f, "tls13.pcapng")
	f.Add(c, s, false)
	f.Add(c[:min(len(c), 300)], s[min(len(s), 100):], true)
	f.Fuzz(func(t *testing.T, client, server []byte, mid bool) {
		dissectAll(t, "tls", ReadOptions{}, mid, client, server)
		if len(client) > 4 {
			parseClientHello(client[4:])
			parseServerHello(client[4:])
			parseCertificates(client[4:], true)
			parseCertificates(client[4:], false)
			parseEncryptedExtensionsALPN(client[4:])
		}
	})
}

func FuzzDissectXOR(f *testing.F) {
	c, s := streamBytes(f, "xor.pcapng")
	f.Add(c, s, false)
	f.Add(c, s[7:], true)
	f.Fuzz(func(t *testing.T, client, server []byte, mid bool) {
		dissectAll(t, "xor", ReadOptions{}, mid, client, server)
		detectScheme(client, server, mid, true)
	})
}

func FuzzDissectAES(f *testing.F) {
	psk := testPSK(f)
	for _, name := range []string{"aes-cbc-hmac.pcapng", "aes-cbc.pcapng"} {
		c, s := streamBytes(f, name)
		f.Add(c, s, false, name == "aes-cbc.pcapng")
	}
	f.Fuzz(func(t *testing.T, client, server []byte, mid, noMAC bool) {
		scheme := "aes-cbc-hmac"
		if noMAC {
			scheme = "aes-cbc"
		}
		dissectAll(t, scheme, ReadOptions{PSK: psk}, mid, client, server)
	})
}

// TestDissectorsOnRecordedBytes runs each dissector on the bytes of its
// golden capture fed in odd chunks, and checks that it recovers the chat.
func TestDissectorsOnRecordedBytes(t *testing.T) {
	tests := []struct {
		file, scheme string
		mid          bool
		opts         ReadOptions
		want         string
		wantHow      string
	}{
		{"plain.pcapng", "plain", false, ReadOptions{}, aliceLine, RecoveredCleartext},
		{"xor.pcapng", "xor", false, ReadOptions{}, aliceLine, RecoveredXORKeyByte},
		{"aes-cbc-hmac.pcapng", "aes-cbc-hmac", false, ReadOptions{PSK: testPSK(t)}, aliceLine, RecoveredPSK},
		{"aes-cbc.pcapng", "aes-cbc", false, ReadOptions{PSK: testPSK(t)}, aliceLine, RecoveredPSK},
	}
	for _, tc := range tests {
		t.Run(tc.scheme, func(t *testing.T) {
			c, s := streamBytes(t, tc.file)
			evs := dissectAll(t, tc.scheme, tc.opts, tc.mid, c, s)
			found := false
			for _, e := range evs {
				if e.Plaintext == tc.want && e.RecoveredBy == tc.wantHow {
					found = true
				}
			}
			if !found {
				t.Errorf("no message %q recovered by %s in %d events", tc.want, tc.wantHow, len(evs))
			}
		})
	}
}

// TestXORBruteForce drops the key byte: the key must be recovered by brute
// force and every line still read.
func TestXORBruteForce(t *testing.T) {
	c, s := streamBytes(t, "xor.pcapng")
	evs := dissectAll(t, "xor", ReadOptions{}, true, c, s[1:])
	var key *int
	got := 0
	for _, e := range evs {
		if e.Type == EventHandshake && e.XORKey != nil {
			key = e.XORKey
		}
		if e.RecoveredBy == RecoveredXORBruteForce && (e.Plaintext == aliceLine || e.Plaintext == "alice") {
			got++
		}
	}
	if key == nil || *key != 0x5a {
		t.Fatalf("got key %v, want 0x5a recovered by brute force", key)
	}
	if got == 0 {
		t.Errorf("got no line recovered by brute force")
	}
}
