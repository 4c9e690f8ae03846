package labs

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-edu/parley/capture"
)

// oracleClient asks the lab's padding oracle, pipelining a batch of
// queries per round trip.
type oracleClient struct {
	t     *testing.T
	c     net.Conn
	r     *bufio.Reader
	calls int
}

func dialOracle(t *testing.T, addr string) *oracleClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(60 * time.Second))
	o := &oracleClient{t: t, c: c, r: bufio.NewReader(c)}
	if l := o.line(); l != OracleGreeting {
		t.Fatalf("got greeting %q, want %q", l, OracleGreeting)
	}
	return o
}

func (o *oracleClient) line() string {
	l, err := o.r.ReadString('\n')
	if err != nil {
		o.t.Fatalf("reading from the oracle: %v", err)
	}
	return strings.TrimSpace(l)
}

// valid reports, for each body, whether the oracle said its padding is good.
func (o *oracleClient) valid(bodies [][]byte) []bool {
	var b strings.Builder
	for _, body := range bodies {
		b.WriteString(hex.EncodeToString(body) + "\n")
	}
	if _, err := o.c.Write([]byte(b.String())); err != nil {
		o.t.Fatal(err)
	}
	out := make([]bool, len(bodies))
	for i := range bodies {
		switch l := o.line(); l {
		case "ok":
			out[i] = true
		case "! bad padding":
		default:
			o.t.Fatalf("unexpected oracle answer %q", l)
		}
	}
	o.calls += len(bodies)
	return out
}

// decryptBlock recovers the plaintext of block c (preceded by prev on the
// wire) with the padding oracle (Vaudenay 2002; CryptoPals 17).
func (o *oracleClient) decryptBlock(prev, c []byte) []byte {
	var inter [16]byte // D(c), learnt from the last byte down
	for j := 15; j >= 0; j-- {
		pad := byte(16 - j)
		var qs [][]byte
		for g := 0; g < 256; g++ {
			iv := make([]byte, 16)
			for k := j + 1; k < 16; k++ {
				iv[k] = inter[k] ^ pad
			}
			iv[j] = byte(g)
			qs = append(qs, append(iv, c...))
		}
		ans := o.valid(qs)
		found := false
		for g, ok := range ans {
			if !ok {
				continue
			}
			if j == 15 {
				// Rule out a longer valid padding (…02 02): change the
				// byte before and ask again.
				q := append([]byte(nil), qs[g]...)
				q[14] ^= 0xff
				if !o.valid([][]byte{q})[0] {
					continue
				}
			}
			inter[j] = byte(g) ^ pad
			found = true
			break
		}
		if !found {
			o.t.Fatalf("no guess gave valid padding at byte %d", j)
		}
	}
	p := make([]byte, 16)
	for i := range p {
		p[i] = inter[i] ^ prev[i]
	}
	return p
}

func TestPaddingOracleSolved(t *testing.T) {
	sess, dir := startLab(t, "padding-oracle", "student1")
	if len(sess.Endpoints) != 1 {
		t.Fatalf("got endpoints %v, want the oracle", sess.Endpoints)
	}
	evs, err := capture.ReadFile(filepath.Join(dir, "padding-oracle.pcapng"), capture.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// alice's records, client to server, on the first stream: the key
	// confirmation, her name, her chat line, then the private message.
	var recs [][]byte
	for _, e := range evs {
		if e.StreamID == 1 && e.Type == capture.EventMessage && e.Direction == capture.DirClient {
			if e.Plaintext != "" {
				t.Fatalf("the capture gives plaintext away: %q", e.Plaintext)
			}
			recs = append(recs, e.Wire)
		}
	}
	if len(recs) < 4 {
		t.Fatalf("got %d records from alice, want at least 4", len(recs))
	}
	rec := recs[3]
	if int(binary.BigEndian.Uint32(rec)) != len(rec)-4 {
		t.Fatalf("record length field %d, record %d bytes", binary.BigEndian.Uint32(rec), len(rec))
	}
	body := rec[4:]
	o := dialOracle(t, sess.Endpoints[0].Addr)
	var plain []byte
	for i := 16; i < len(body); i += 16 {
		plain = append(plain, o.decryptBlock(body[i-16:i], body[i:i+16])...)
	}
	// Strip the PKCS#7 padding.
	plain = plain[:len(plain)-int(plain[len(plain)-1])]
	t.Logf("decrypted %q with %d queries", plain, o.calls)
	i := bytes.Index(plain, []byte("the vault code is "))
	if i < 0 {
		t.Fatalf("decrypted %q, want the vault code", plain)
	}
	wantSolved(t, "padding-oracle", "student1", string(plain[i+len("the vault code is "):]))

	for _, q := range []string{"zz", "00", fmt.Sprintf("%x", make([]byte, 20))} {
		fmt.Fprintln(o.c, q)
		if l := o.line(); !strings.HasPrefix(l, "! ") {
			t.Errorf("query %q: got %q, want an error line", q, l)
		}
	}
}
