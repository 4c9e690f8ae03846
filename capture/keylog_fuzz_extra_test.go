package capture

import (
	"bytes"
	"testing"
)

// FuzzKeyLog feeds arbitrary text, in two pieces split anywhere, to the key
// log parser (a --keylog file is untrusted input) and checks that what it
// keeps reads back the same: every kept line is "LABEL <64 hex> <hex>",
// and parsing its own output changes nothing.
func FuzzKeyLog(f *testing.F) {
	f.Add([]byte("# comment\nCLIENT_TRAFFIC_SECRET_0 0001020304050607080900010203040506070809000102030405060708090001 aabbcc\n"), uint16(40))
	f.Add([]byte("CLIENT_HANDSHAKE_TRAFFIC_SECRET 00 11\nSERVER_TRAFFIC_SECRET_0 "+string(bytes.Repeat([]byte("ab"), 32))+" zz\r\n"), uint16(3))
	f.Add([]byte("EXPORTER_SECRET "+string(bytes.Repeat([]byte("0f"), 32))+" 00"), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		i := int(cut) % (len(data) + 1)
		k := newKeyLog()
		k.add(data[:i])
		k.add(data[i:])
		k.flush()
		out := k.text()
		for _, line := range bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n")) {
			if len(out) == 0 {
				break
			}
			if f := bytes.Fields(line); len(f) != 3 || len(f[1]) != 64 {
				t.Fatalf("kept a malformed line %q", line)
			}
			k.secret(bytes.Repeat([]byte{0}, 32), string(bytes.Fields(line)[0]))
		}
		again := newKeyLog()
		again.add(out)
		again.flush()
		if got := again.text(); !bytes.Equal(got, out) {
			t.Fatalf("re-parsing the key log changed it:\n%q\nto\n%q", out, got)
		}
	})
}

// FuzzDissectPlain runs the plain dissector (line splitting of both
// directions, in chunks) on arbitrary bytes, seeded from the golden
// capture.
func FuzzDissectPlain(f *testing.F) {
	c, s := streamBytes(f, "plain.pcapng")
	f.Add(c, s, false)
	f.Add(c[min(len(c), 3):], s, true)
	f.Fuzz(func(t *testing.T, client, server []byte, mid bool) {
		dissectAll(t, "plain", ReadOptions{}, mid, client, server)
		detectScheme(client, server, mid, true)
	})
}
