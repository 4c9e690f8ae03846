package attack

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/parley-edu/parley/schemes"
)

// maxUnit bounds one line or record the relay buffers: the largest
// --max-line a room accepts, plus framing.
const maxUnit = 16<<20 + 64

// errTooLarge reports a line or record over maxUnit.
var errTooLarge = errors.New("attack: line or record larger than 16 MiB")

// A unit is one message-carrying piece of the stream, as Mallory cuts it:
// a line (plain, tls) or a record (xor, aes).
type unit struct {
	raw  []byte // exactly as on the wire, framing included
	body []byte // raw without framing: after the length field, or the line without its ending
	text []byte // the message, when Mallory can read it; nil otherwise
}

// A codec cuts one scheme's stream into units and builds new ones. A codec
// is used by both directions of a connection at once; its state (the xor
// key) is fixed before they start.
type codec interface {
	read(r *bufio.Reader) (unit, error)
	// encode returns the unit carrying text, or false when Mallory cannot
	// build one (she lacks the key).
	encode(text []byte) (unit, bool)
	// rebody returns u with its body replaced by body of the same length.
	rebody(u unit, body []byte) unit
}

// lineCodec frames messages by LF, as plain does and tls does inside TLS.
type lineCodec struct{}

func (lineCodec) read(r *bufio.Reader) (unit, error) {
	var raw []byte
	for {
		chunk, err := r.ReadSlice('\n')
		raw = append(raw, chunk...)
		if len(raw) > maxUnit {
			return unit{}, errTooLarge
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if len(raw) > 0 && errors.Is(err, io.EOF) {
				// A last line without LF: pass it on as it is.
				return unit{raw: raw, body: raw, text: raw}, nil
			}
			return unit{}, err
		}
		body := bytes.TrimSuffix(bytes.TrimSuffix(raw, []byte("\n")), []byte("\r"))
		return unit{raw: raw, body: body, text: body}, nil
	}
}

func (lineCodec) encode(text []byte) (unit, bool) {
	raw := append(append([]byte{}, text...), '\n')
	return unit{raw: raw, body: raw[:len(text)], text: raw[:len(text)]}, true
}

func (lineCodec) rebody(u unit, body []byte) unit {
	end := u.raw[len(u.body):]
	raw := append(append([]byte{}, body...), end...)
	return unit{raw: raw, body: raw[:len(body)], text: raw[:len(body)]}
}

// xorCodec frames xor records: len(2) ‖ message XOR key (PROTOCOL.md,
// "xor").
type xorCodec struct{ key byte }

func (c *xorCodec) read(r *bufio.Reader) (unit, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return unit{}, err
	}
	raw := make([]byte, 2+int(binary.BigEndian.Uint16(hdr[:])))
	copy(raw, hdr[:])
	if _, err := io.ReadFull(r, raw[2:]); err != nil {
		return unit{}, unexpected(err)
	}
	return c.unit(raw), nil
}

func (c *xorCodec) unit(raw []byte) unit {
	text := append([]byte{}, raw[2:]...)
	for i := range text {
		text[i] ^= c.key
	}
	return unit{raw: raw, body: raw[2:], text: text}
}

func (c *xorCodec) encode(text []byte) (unit, bool) {
	if len(text) > schemes.XORMaxMessage {
		return unit{}, false
	}
	raw := binary.BigEndian.AppendUint16(nil, uint16(len(text)))
	for _, b := range text {
		raw = append(raw, b^c.key)
	}
	return c.unit(raw), true
}

func (c *xorCodec) rebody(u unit, body []byte) unit {
	return c.unit(append(append([]byte{}, u.raw[:2]...), body...))
}

// aesCodec frames aes-cbc and aes-cbc-hmac records: len(4) ‖ IV ‖
// ciphertext [‖ tag] (PROTOCOL.md, "Records"). It cannot read or build
// them: that needs the pre-shared key.
type aesCodec struct{ mac bool }

func (c *aesCodec) read(r *bufio.Reader) (unit, error) {
	var hdr [schemes.RecordHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return unit{}, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxUnit {
		return unit{}, fmt.Errorf("%w (length field %d)", errTooLarge, n)
	}
	raw := make([]byte, schemes.RecordHeaderLen+int(n))
	copy(raw, hdr[:])
	if _, err := io.ReadFull(r, raw[schemes.RecordHeaderLen:]); err != nil {
		return unit{}, unexpected(err)
	}
	return unit{raw: raw, body: raw[schemes.RecordHeaderLen:]}, nil
}

func (c *aesCodec) encode([]byte) (unit, bool) { return unit{}, false }

func (c *aesCodec) rebody(u unit, body []byte) unit {
	raw := append(append([]byte{}, u.raw[:schemes.RecordHeaderLen]...), body...)
	return unit{raw: raw, body: raw[schemes.RecordHeaderLen:]}
}

// forge returns a record that looks like one carrying n message bytes:
// the right length, random IV, ciphertext and tag. Without the key it
// cannot decrypt to anything chosen.
func (c *aesCodec) forge(n int, random func([]byte)) unit {
	body := make([]byte, schemes.RecordIVLen+(n/16+1)*16)
	if c.mac {
		body = append(body, make([]byte, schemes.RecordTagLen)...)
	}
	random(body)
	raw := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	raw = append(raw, body...)
	return unit{raw: raw, body: raw[schemes.RecordHeaderLen:]}
}

// describe says what an aes record's size reveals.
func (c *aesCodec) describe(u unit) string {
	n := len(u.body) - schemes.RecordIVLen
	if c.mac {
		n -= schemes.RecordTagLen
	}
	if n < 16 || n%16 != 0 {
		return "a malformed record; Mallory cannot read it"
	}
	return fmt.Sprintf("%d bytes of ciphertext, so a message of %d to %d bytes; Mallory cannot read it", n, n-16, n-1)
}

// bruteForceXOR finds the xor key that turns the body of a room's first
// record into its greeting ("* parley room ..."), trying all 256 keys, as
// an eavesdropper who missed the key byte would.
func bruteForceXOR(body []byte) (byte, bool) {
	const greeting = "* parley room "
	if len(body) < len(greeting) {
		return 0, false
	}
	for k := range 256 {
		ok := true
		for i := range len(greeting) {
			if body[i]^byte(k) != greeting[i] {
				ok = false
				break
			}
		}
		if ok {
			return byte(k), true
		}
	}
	return 0, false
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
