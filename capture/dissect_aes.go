package capture

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/parley-edu/parley/schemes"
)

// aesDissector reads aes-cbc-hmac and aes-cbc (PROTOCOL.md, "Hello" and
// "Records"): a hello from each side (magic, version, scheme id, nonce) in
// the clear, then records len(4) ‖ IV(16) ‖ ciphertext ‖ tag(32, absent in
// aes-cbc). Without the key the sizes still tell each message's length to
// within one AES block; with the pre-shared key every record is decrypted
// (and for aes-cbc-hmac its tag checked).
type aesDissector struct {
	s      *stream
	mac    bool
	buf    [2][]byte
	hello  [2]*schemes.Hello
	keys   [2]*schemes.DirectionKeys // indexed by sending side
	seq    [2]uint64
	noSeq  bool // records were lost: sequence numbers are unknown
	lost   [2]bool
	warned bool
}

func newAESDissector(s *stream) *aesDissector {
	return &aesDissector{s: s, mac: s.scheme != "aes-cbc", noSeq: s.midStream}
}

func (d *aesDissector) data(side Side, t time.Time, b []byte) {
	if d.lost[side] {
		d.lost[side] = false
		d.buf[side] = d.buf[side][:0]
	}
	d.buf[side] = append(d.buf[side], b...)
	buf := d.buf[side]
	if d.hello[side] == nil && !d.s.midStream {
		if len(buf) < schemes.HelloLen {
			return
		}
		h, err := schemes.ParseHello(buf)
		if err != nil {
			d.s.note(side, t, "expected a parley hello: "+err.Error())
			d.noSeq = true
		} else {
			d.onHello(side, t, h, buf[:schemes.HelloLen])
		}
		buf = buf[schemes.HelloLen:]
		if d.hello[side] == nil {
			d.hello[side] = &schemes.Hello{}
		}
	}
	for len(buf) >= schemes.RecordHeaderLen {
		n := binary.BigEndian.Uint32(buf)
		if n > 16<<20 {
			d.s.note(side, t, fmt.Sprintf("record length %d is implausible: the framing is lost for this direction", n))
			d.lost[side] = true
			buf = nil
			break
		}
		if uint32(len(buf)-schemes.RecordHeaderLen) < n {
			break
		}
		d.record(side, t, buf[:schemes.RecordHeaderLen+int(n)])
		buf = buf[schemes.RecordHeaderLen+int(n):]
	}
	d.buf[side] = append(d.buf[side][:0], buf...)
}

func (d *aesDissector) onHello(side Side, t time.Time, h schemes.Hello, wire []byte) {
	d.hello[side] = &h
	e := d.s.event(EventHandshake, side, t)
	e.WireBytes = len(wire)
	e.Wire = append([]byte(nil), wire...)
	nonce := hex.EncodeToString(h.Nonce[:])
	if side == Client {
		e.ClientNonce = nonce
	} else {
		e.ServerNonce = nonce
	}
	name := schemes.SchemeName(h.SchemeID)
	if name == "" {
		name = fmt.Sprintf("unknown id %d", h.SchemeID)
	}
	e.Text = fmt.Sprintf("hello in the clear: version %d, scheme %s, nonce %s", h.Version, name, nonce)
	d.s.rd.send(e)
	if d.hello[Client] != nil && d.hello[Server] != nil && len(d.s.rd.opts.PSK) > 0 {
		c2s, s2c := schemes.DeriveSessionKeys(d.s.rd.opts.PSK, d.hello[Client].Nonce, d.hello[Server].Nonce)
		d.keys[Client], d.keys[Server] = &c2s, &s2c
		d.s.note(side, t, "session keys derived from the pre-shared key and both nonces (HKDF-SHA256)")
	}
}

func (d *aesDissector) record(side Side, t time.Time, rec []byte) {
	body := rec[schemes.RecordHeaderLen:]
	tagLen := 0
	if d.mac {
		tagLen = schemes.RecordTagLen
	}
	e := d.s.event(EventMessage, side, t)
	e.WireBytes = len(rec)
	e.Wire = append([]byte(nil), rec...)
	e.Record = "record"
	seq := d.seq[side]
	d.seq[side]++
	ctLen := len(body) - schemes.RecordIVLen - tagLen
	if ctLen <= 0 || ctLen%16 != 0 {
		e.Text = fmt.Sprintf("malformed record of %d bytes (not IV + whole blocks%s)", len(body), map[bool]string{true: " + tag", false: ""}[d.mac])
		d.s.rd.send(e)
		return
	}
	e.IV = hex.EncodeToString(body[:schemes.RecordIVLen])
	e.CiphertextBytes = ctLen
	e.TagBytes = tagLen
	// PKCS#7 (RFC 5652 §6.3) adds 1 to 16 bytes of padding.
	e.PlaintextSize = fmt.Sprintf("%d-%d bytes", ctLen-16, ctLen-1)
	e.Text = fmt.Sprintf("seq %d, IV %s, %d bytes of ciphertext", seq, e.IV, ctLen)
	if d.mac {
		e.Text += ", 32-byte tag"
	}
	e.Text += fmt.Sprintf(": the message is %s long", e.PlaintextSize)
	if k := d.keys[side]; k != nil && !d.noSeq {
		msg, err := schemes.OpenRecord(*k, seq, body, d.mac)
		switch {
		case err == nil:
			e.Plaintext = string(msg)
			e.RecoveredBy = RecoveredPSK
			if seq == 0 {
				e.Text += " (key confirmation)"
			}
			if d.mac {
				e.Text += "; tag verified"
			}
		case errors.Is(err, schemes.ErrBadRecordMAC):
			e.Text += "; the tag does NOT verify with this pre-shared key (wrong key, or the record was altered)"
		default:
			e.Text += "; does not decrypt with this pre-shared key: " + err.Error()
		}
	} else if len(d.s.rd.opts.PSK) > 0 && !d.warned {
		d.warned = true
		d.s.note(side, t, "the hellos (nonces) or earlier records were not captured, so the session keys cannot be derived from the pre-shared key")
	}
	d.s.rd.send(e)
}

func (d *aesDissector) gap(side Side, t time.Time, n int) {
	d.s.note(side, t, gapText(side, n)+"; record framing resumes at the next segment, sequence numbers are lost")
	d.lost[side] = true
	d.noSeq = true
}

func (d *aesDissector) end(t time.Time) {
	for _, side := range []Side{Client, Server} {
		if len(d.buf[side]) > 0 {
			d.s.note(side, t, fmt.Sprintf("%d bytes of an unfinished record at the end of the stream", len(d.buf[side])))
		}
	}
}
