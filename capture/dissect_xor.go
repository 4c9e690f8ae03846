package capture

import (
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/parley-edu/parley/schemes"
)

// xorDissector reads the xor scheme (PROTOCOL.md, "xor"): the server's
// first byte is key + 10 in the clear, then each side sends records of a
// 2-byte big-endian length and the message XORed with the key. When the
// capture missed the key byte, the key is recovered by trying all 256.
type xorDissector struct {
	s        *stream
	buf      [2][]byte
	key      int // -1 until known
	how      string
	needByte bool // the server's next byte is the key byte
	held     []heldRecord
	heldLen  int
	lost     [2]bool // after a gap: the record framing is lost until the next chunk
}

type heldRecord struct {
	side Side
	t    time.Time
	rec  []byte // length field and body
}

// Brute force waits for this many bytes of records (or the end of the
// stream) so that it has enough text to score.
const xorBruteForceBytes = 256

func newXORDissector(s *stream) *xorDissector {
	return &xorDissector{s: s, key: -1, needByte: !s.midStream}
}

func (d *xorDissector) data(side Side, t time.Time, b []byte) {
	if side == Server && d.needByte && len(b) > 0 {
		d.needByte = false
		key := schemes.XORKeyFromWire(b[0])
		d.key, d.how = int(key), RecoveredXORKeyByte
		e := d.s.event(EventHandshake, side, t)
		k := int(key)
		e.XORKey = &k
		e.Text = fmt.Sprintf("key byte 0x%02x sent in the clear: key = 0x%02x - %d = 0x%02x (%d); every message below is decrypted with it",
			b[0], b[0], schemes.XORKeyOffset, key, key)
		e.WireBytes = 1
		e.Wire = []byte{b[0]}
		d.s.rd.send(e)
		b = b[1:]
	}
	if d.lost[side] {
		d.lost[side] = false
		d.buf[side] = d.buf[side][:0]
	}
	d.buf[side] = append(d.buf[side], b...)
	buf := d.buf[side]
	for len(buf) >= 2 {
		n := int(binary.BigEndian.Uint16(buf))
		if len(buf) < 2+n {
			break
		}
		d.record(side, t, buf[:2+n])
		buf = buf[2+n:]
	}
	d.buf[side] = append(d.buf[side][:0], buf...)
}

func (d *xorDissector) record(side Side, t time.Time, rec []byte) {
	if d.key < 0 {
		d.held = append(d.held, heldRecord{side, t, append([]byte(nil), rec...)})
		d.heldLen += len(rec)
		if d.heldLen >= xorBruteForceBytes {
			d.bruteForce(t)
		}
		return
	}
	e := d.s.event(EventMessage, side, t)
	e.Record = fmt.Sprintf("record len=%d", len(rec)-2)
	e.WireBytes = len(rec)
	e.Plaintext = string(xorWith(rec[2:], byte(d.key)))
	e.RecoveredBy = d.how
	e.Wire = append([]byte(nil), rec...)
	d.s.rd.send(e)
}

// bruteForce recovers the key from the held records and shows them.
func (d *xorDissector) bruteForce(t time.Time) {
	bodies := make([][]byte, len(d.held))
	for i, h := range d.held {
		bodies[i] = h.rec[2:]
	}
	key, ok := bruteForceXOR(bodies)
	e := d.s.event(EventHandshake, Server, t)
	k := int(key)
	e.XORKey = &k
	if ok {
		e.Text = fmt.Sprintf("key byte not captured; key recovered by brute force: trying all 256 keys, 0x%02x (%d) gives the most text-like plaintext", key, key)
	} else {
		e.Text = fmt.Sprintf("key byte not captured; brute force found no key that gives text; best guess 0x%02x (%d)", key, key)
	}
	d.s.rd.send(e)
	d.key, d.how = int(key), RecoveredXORBruteForce
	held := d.held
	d.held, d.heldLen = nil, 0
	for _, h := range held {
		d.record(h.side, h.t, h.rec)
	}
}

func (d *xorDissector) gap(side Side, t time.Time, n int) {
	d.s.note(side, t, gapText(side, n)+"; xor record framing resumes at the next segment")
	d.lost[side] = true
	if side == Server {
		d.needByte = false
	}
}

func (d *xorDissector) end(t time.Time) {
	if d.key < 0 && len(d.held) > 0 {
		d.bruteForce(t)
	}
	for _, side := range []Side{Client, Server} {
		if len(d.buf[side]) > 0 {
			d.s.note(side, t, fmt.Sprintf("%d bytes of an unfinished xor record at the end of the stream", len(d.buf[side])))
		}
	}
}

func xorWith(b []byte, key byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = c ^ key
	}
	return out
}

// bruteForceXOR tries all 256 keys on bodies and returns the one whose
// plaintext scores best as English-like UTF-8 text, and whether that
// plaintext is text at all.
func bruteForceXOR(bodies [][]byte) (byte, bool) {
	best, bestScore := 0, -1<<31
	buf := make([]byte, 0, 512)
	for k := 0; k < 256; k++ {
		score := 0
		for _, body := range bodies {
			buf = buf[:0]
			for _, c := range body {
				buf = append(buf, c^byte(k))
			}
			score += textScore(buf)
		}
		if score > bestScore {
			best, bestScore = k, score
		}
	}
	return byte(best), bestScore > 0
}

// textScore scores b as chat text: letters and spaces score high, other
// printable characters a little, invalid UTF-8 and control characters cost.
func textScore(b []byte) int {
	score := 0
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		switch {
		case r == utf8.RuneError && size <= 1:
			score -= 10
		case r >= 'a' && r <= 'z', r == ' ':
			score += 3
		case r >= 'A' && r <= 'Z':
			score += 2
		case r >= '0' && r <= '9', r == '.', r == ',', r == '!', r == '?', r == ':', r == '\'', r == '*', r == '-':
			score++
		case r < 0x20 || r == 0x7f:
			score -= 10
		case r < 0x80:
		default:
			score++ // other printable UTF-8
		}
	}
	return score
}
