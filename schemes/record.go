package schemes

// The record layer of aes-cbc-hmac and aes-cbc (PROTOCOL.md, "Records").
//
// A record is len(4, big-endian) ‖ IV(16) ‖ AES-256-CBC ciphertext ‖
// HMAC-SHA256 tag(32), where len counts everything after the length field
// and the tag, absent in aes-cbc, is HMAC-SHA256 over
// seq(8) ‖ len ‖ IV ‖ ciphertext with an implicit per-direction sequence
// number: encrypt-then-MAC (RFC 7366 explains why this order), so the tag is
// checked before a single byte is decrypted and bad padding can never be
// told apart from a bad tag (no padding oracle, unlike TLS's MAC-then-encrypt
// CBC suites and the Lucky13 attack on them).
//
// As in crypto/tls, each direction has its own state (the sealer and the
// opener halves) with its keys, sequence number and first error; the reader
// and the writer goroutine of a Conn each touch only their own half, so
// there is no lock.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"slices"
)

const (
	// RecordHeaderLen is the length of a record's length field.
	RecordHeaderLen = 4
	// RecordIVLen is the length of a record's IV, one AES block.
	RecordIVLen = aes.BlockSize
	// RecordTagLen is the length of an aes-cbc-hmac record's tag.
	RecordTagLen = sha256.Size
)

// Errors of the record layer, besides ErrBadRecordMAC and ErrWrongKey.
var (
	// ErrBadRecord is aes-cbc's single error for a record that does not
	// decrypt: bad length or bad padding. With Config.PaddingOracle the
	// server reports bad padding as ErrBadPadding instead.
	ErrBadRecord = errors.New("schemes: bad record")
	// ErrBadPadding reports an aes-cbc record whose PKCS#7 padding
	// (RFC 5652 §6.3) is wrong. Only an aes-cbc Conn with
	// Config.PaddingOracle returns it, and then the Conn stays usable so
	// that the padding-oracle lab can send its next guess: this is the
	// deliberate oracle. OpenRecord returns it for aes-cbc records so labs
	// can build the oracle offline. aes-cbc-hmac never returns it.
	ErrBadPadding = errors.New("schemes: bad padding")
	// ErrRecordTooLarge reports a length field over the Conn's limit. It is
	// fatal: the record cannot be authenticated without reading it, and
	// skipping it would let a man in the middle delete a record unnoticed.
	// It does not wrap ErrMessageTooLong, whose callers may keep reading.
	ErrRecordTooLarge = errors.New("schemes: record larger than the limit")
)

// cbcMode is a CBC encrypter or decrypter whose IV can be reset, so one
// instance serves every record of a direction (as in crypto/tls).
type cbcMode interface {
	cipher.BlockMode
	SetIV([]byte)
}

// errKind classifies an open failure before it is mapped to the one error a
// scheme may show.
type errKind int

const (
	badLength errKind = iota + 1
	badMAC
	badPadding
)

// maxRecordBody is the largest length field accepted for messages of up to
// maxMsg bytes: IV, the message padded to whole blocks, and the tag.
func maxRecordBody(maxMsg int, mac bool) int {
	n := RecordIVLen + (maxMsg/aes.BlockSize+1)*aes.BlockSize
	if mac {
		n += RecordTagLen
	}
	return n
}

// sealer is the sending half: it turns messages into records.
type sealer struct {
	mode   cbcMode
	mac    hash.Hash // nil for aes-cbc
	seq    uint64
	seqBuf [8]byte
	iv     [RecordIVLen]byte
}

// opener is the receiving half's cryptography: it checks and decrypts
// records in place.
type opener struct {
	mode cbcMode
	mac  hash.Hash // nil for aes-cbc
	seq  uint64
	aad  [8 + RecordHeaderLen]byte // seq ‖ len, the tag's prefix
	sum  [RecordTagLen]byte
}

func newCipher(k DirectionKeys, mac bool) (cipher.Block, hash.Hash, error) {
	if len(k.Enc) != 32 {
		return nil, nil, fmt.Errorf("schemes: encryption key is %d bytes, want 32", len(k.Enc))
	}
	block, err := aes.NewCipher(k.Enc)
	if err != nil {
		return nil, nil, fmt.Errorf("schemes: %w", err)
	}
	if !mac {
		return block, nil, nil
	}
	if len(k.MAC) != 32 {
		return nil, nil, fmt.Errorf("schemes: MAC key is %d bytes, want 32", len(k.MAC))
	}
	return block, hmac.New(sha256.New, k.MAC), nil
}

func newSealer(k DirectionKeys, mac bool) (*sealer, error) {
	block, h, err := newCipher(k, mac)
	if err != nil {
		return nil, err
	}
	var zero [RecordIVLen]byte
	return &sealer{mode: cipher.NewCBCEncrypter(block, zero[:]).(cbcMode), mac: h}, nil
}

func newOpener(k DirectionKeys, mac bool) (*opener, error) {
	block, h, err := newCipher(k, mac)
	if err != nil {
		return nil, err
	}
	var zero [RecordIVLen]byte
	return &opener{mode: cipher.NewCBCDecrypter(block, zero[:]).(cbcMode), mac: h}, nil
}

// sealedLen is the length of the record of an n-byte message, length field
// included.
func (s *sealer) sealedLen(n int) int {
	l := RecordHeaderLen + RecordIVLen + (n/aes.BlockSize+1)*aes.BlockSize
	if s.mac != nil {
		l += RecordTagLen
	}
	return l
}

// seal appends the record of msg, length field included, to dst, encrypted
// under iv, and advances the sequence number. msg must not overlap dst's
// spare capacity.
func (s *sealer) seal(dst, msg, iv []byte) []byte {
	dst = slices.Grow(dst, s.sealedLen(len(msg)))
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(s.sealedLen(len(msg))-RecordHeaderLen))
	dst = append(dst, iv...)
	ctStart := len(dst)
	dst = append(dst, msg...)
	// PKCS#7 padding, RFC 5652 §6.3: 1 to 16 bytes, each holding the count.
	pad := aes.BlockSize - len(msg)%aes.BlockSize
	for range pad {
		dst = append(dst, byte(pad))
	}
	ct := dst[ctStart:]
	s.mode.SetIV(iv)
	s.mode.CryptBlocks(ct, ct)
	if s.mac != nil {
		binary.BigEndian.PutUint64(s.seqBuf[:], s.seq)
		s.mac.Reset()
		s.mac.Write(s.seqBuf[:])
		s.mac.Write(dst[start:])
		dst = s.mac.Sum(dst)
	}
	s.seq++
	return dst
}

// sealRandom is seal with a fresh IV from crypto/rand.
func (s *sealer) sealRandom(dst, msg []byte) ([]byte, error) {
	if _, err := rand.Read(s.iv[:]); err != nil {
		return dst, fmt.Errorf("schemes: failed to draw a record IV: %w", err)
	}
	return s.seal(dst, msg, s.iv[:]), nil
}

// open checks and decrypts body, a record without its length field, in
// place, advances the sequence number whatever the outcome, and returns
// the message, which aliases body. With a MAC the tag is checked, in
// constant time, before anything is decrypted.
func (o *opener) open(body []byte) ([]byte, errKind) {
	seq := o.seq
	o.seq++
	tagLen := 0
	if o.mac != nil {
		tagLen = RecordTagLen
	}
	if len(body) < RecordIVLen+aes.BlockSize+tagLen || (len(body)-RecordIVLen-tagLen)%aes.BlockSize != 0 {
		return nil, badLength
	}
	if o.mac != nil {
		binary.BigEndian.PutUint64(o.aad[:8], seq)
		binary.BigEndian.PutUint32(o.aad[8:], uint32(len(body)))
		o.mac.Reset()
		o.mac.Write(o.aad[:])
		o.mac.Write(body[:len(body)-tagLen])
		if !hmac.Equal(o.mac.Sum(o.sum[:0]), body[len(body)-tagLen:]) {
			return nil, badMAC
		}
	}
	ct := body[RecordIVLen : len(body)-tagLen]
	o.mode.SetIV(body[:RecordIVLen])
	o.mode.CryptBlocks(ct, ct)
	// With a MAC the padding of an authentic record is the sender's, so
	// checking it in variable time reveals nothing. Without a MAC aes-cbc
	// is an oracle by design.
	pad := int(ct[len(ct)-1])
	if pad == 0 || pad > aes.BlockSize {
		return nil, badPadding
	}
	for _, b := range ct[len(ct)-pad:] {
		if int(b) != pad {
			return nil, badPadding
		}
	}
	return ct[:len(ct)-pad], 0
}

// recordError maps an open failure to the one error a scheme shows:
// aes-cbc-hmac shows ErrBadRecordMAC for everything; aes-cbc shows
// ErrBadRecord, or ErrBadPadding for bad padding when oracle is set.
func recordError(kind errKind, mac, oracle bool) error {
	switch {
	case mac:
		return ErrBadRecordMAC
	case oracle && kind == badPadding:
		return ErrBadPadding
	}
	return ErrBadRecord
}

// SealRecord appends to dst one complete record of msg for the direction
// with keys k and sequence number seq, length field included, with a fresh
// IV from crypto/rand, and returns the extended slice. mac selects
// aes-cbc-hmac (true) or aes-cbc (false, k.MAC unused). It is meant for the
// man-in-the-middle relay and the labs, and builds its cipher state on every
// call. It panics if k's keys are not 32 bytes each or crypto/rand fails.
func SealRecord(dst []byte, k DirectionKeys, seq uint64, msg []byte, mac bool) []byte {
	var iv [RecordIVLen]byte
	if _, err := rand.Read(iv[:]); err != nil {
		panic("schemes: crypto/rand: " + err.Error())
	}
	return sealRecordIV(dst, k, seq, msg, mac, iv[:])
}

// sealRecordIV is SealRecord with a chosen IV, for test vectors.
func sealRecordIV(dst []byte, k DirectionKeys, seq uint64, msg []byte, mac bool, iv []byte) []byte {
	s, err := newSealer(k, mac)
	if err != nil {
		panic(err.Error())
	}
	s.seq = seq
	return s.seal(dst, msg, iv)
}

// OpenRecord checks and decrypts body, one record without its length
// field, as record number seq of the direction with keys k, and returns the
// message in a new slice; body is not modified. mac selects aes-cbc-hmac
// (every failure is ErrBadRecordMAC, tag checked in constant time before
// decryption) or aes-cbc (bad padding is ErrBadPadding, any other failure
// ErrBadRecord). It is meant for offline use by the capture tool and the
// labs, and builds its cipher state on every call.
func OpenRecord(k DirectionKeys, seq uint64, body []byte, mac bool) ([]byte, error) {
	o, err := newOpener(k, mac)
	if err != nil {
		return nil, err
	}
	o.seq = seq
	msg, kind := o.open(slices.Clone(body))
	if kind != 0 {
		return nil, recordError(kind, mac, true)
	}
	return msg, nil
}

// inHalf is the receiving half of a record Conn: the opener plus framing.
type inHalf struct {
	opener
	r       io.Reader
	hdr     [RecordHeaderLen]byte
	buf     []byte // reused for every record
	maxBody int
	err     error // sticky
}

// readRecord reads one record and returns its body (without the length
// field) in h.buf. An over-long length field is rejected before anything
// is allocated.
func (h *inHalf) readRecord() ([]byte, error) {
	if _, err := io.ReadFull(h.r, h.hdr[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("schemes: connection closed inside a record header: %w", err)
		}
		return nil, err
	}
	n := binary.BigEndian.Uint32(h.hdr[:])
	if uint64(n) > uint64(h.maxBody) {
		return nil, fmt.Errorf("%w: the length field says %d bytes, the limit is %d (the peer may allow longer messages than we do)", ErrRecordTooLarge, n, h.maxBody)
	}
	if cap(h.buf) < int(n) {
		h.buf = make([]byte, max(int(n), 2*cap(h.buf), 2048))
	}
	body := h.buf[:n]
	if _, err := io.ReadFull(h.r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("schemes: connection closed inside a %d-byte record: %w", n, err)
	}
	return body, nil
}

// outHalf is the sending half of a record Conn: the sealer plus the
// buffer that every WriteLines call reuses.
type outHalf struct {
	sealer
	buf []byte
	err error // sticky
}

// sealLines seals every '\n'-terminated message of b (a final unterminated
// message too) into h.buf. On error nothing was sealed: the sequence number
// is where it was.
func (h *outHalf) sealLines(b []byte, maxMsg int) ([]byte, error) {
	seq := h.seq
	out := h.buf[:0]
	for len(b) > 0 {
		msg := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			msg, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(msg) > maxMsg {
			h.seq = seq
			return nil, fmt.Errorf("schemes: cannot send a %d-byte message: %w (limit %d bytes)", len(msg), ErrMessageTooLong, maxMsg)
		}
		if h.seq == math.MaxUint64 {
			h.seq = seq
			return nil, errors.New("schemes: record sequence number exhausted: reconnect")
		}
		var err error
		if out, err = h.sealRandom(out, msg); err != nil {
			h.seq = seq
			return nil, err
		}
	}
	// Keep the buffer for the next call unless one burst made it huge.
	if cap(out) <= 1<<20 {
		h.buf = out
	}
	return out, nil
}
