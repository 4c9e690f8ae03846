package capture

// Lock order in this file: WireConn.rmu before WireConn.mu.

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/parley-edu/parley/schemes"
)

// Limits of what a WireConn keeps.
const (
	// WireHead is how many bytes from the start of a unit a WireUnit keeps.
	WireHead = 4096
	// WireTail is how many bytes from the end of a longer unit it keeps as
	// well, so that a record's tag stays visible.
	WireTail = 64
	// MaxWriteUnits bounds the units one CaptureWrites call returns.
	MaxWriteUnits = 8

	wireReadBuffer = 32 << 10
	// maxWireRecord bounds an aes record length field that the framing
	// believes: larger than any record a 16 MiB message limit allows.
	maxWireRecord = 16<<20 + 1024
)

// WirePart is one labelled span of a WireUnit.
type WirePart struct {
	Name string // what the bytes are: "length", "IV", "ciphertext", "tag", ...
	Off  int    // offset in the unit
	Len  int    // length in bytes
	Note string // what they say, e.g. "64 bytes follow"; may be empty
}

// WireUnit is one unit of a scheme's framing as it crossed the wire: a line
// (plain), the key byte or a record (xor), a hello or a record (aes-cbc,
// aes-cbc-hmac), or a TLS record (tls, mtls). Parts label its bytes in
// order, and Reveals says in one phrase what an eavesdropper learns from
// it. Text that came from the peer is quoted with %q in Parts and Reveals.
type WireUnit struct {
	Scheme  string
	Dir     string // DirServer for bytes the client read, DirClient for bytes it wrote
	Kind    string // e.g. "line", "record", "key byte", "TLS application_data record"
	Size    int    // bytes on the wire
	Head    []byte // the first min(Size, WireHead) bytes
	Tail    []byte // the last min(Size-len(Head), WireTail) bytes
	Parts   []WirePart
	Reveals string
}

// Bytes returns the unit's bytes, or nil when it was longer than
// WireHead+WireTail and its middle was not kept.
func (u WireUnit) Bytes() []byte {
	if len(u.Head)+len(u.Tail) != u.Size {
		return nil
	}
	return append(append([]byte(nil), u.Head...), u.Tail...)
}

// PartBytes returns up to max bytes from the start of p, as far as they
// were kept.
func (u WireUnit) PartBytes(p WirePart, max int) []byte {
	end := p.Off + min(p.Len, max)
	if p.Off < len(u.Head) {
		return u.Head[p.Off:min(end, len(u.Head))]
	}
	tailStart := u.Size - len(u.Tail)
	if p.Off >= tailStart {
		return u.Tail[p.Off-tailStart : min(end, u.Size)-tailStart]
	}
	return nil
}

// WireSummary says in one sentence what an eavesdropper gets from the
// bytes of the named scheme.
func WireSummary(scheme string) string {
	switch scheme {
	case "plain":
		return "an eavesdropper reads everything: every line crosses as it is"
	case "xor":
		return "an eavesdropper reads everything, with the key byte sent in the clear"
	case "aes-cbc":
		return "an eavesdropper sees only lengths and timing, but can flip bits: no tag"
	case "aes-cbc-hmac":
		return "an eavesdropper sees lengths (to 16 bytes) and timing only"
	case "tls", "mtls":
		return "an eavesdropper sees record sizes (each line's length) and timing only"
	}
	return "an eavesdropper sees the bytes below"
}

// WireConn is the client side of a connection that remembers the units of
// the scheme's framing that cross it: the last one read, and those written
// during CaptureWrites. Run a scheme's Client over it.
//
// Read hands the reader at most one unit per call, reading ahead from the
// network into a buffer of its own, so that when a Conn's ReadMessage
// returns, LastRead is the unit that carried the end of that message. The
// bytes are passed on unchanged whatever the framing finds; a stream that
// stops making sense (a length field out of range) is then recorded as
// plain chunks. Memory is bounded: a unit keeps WireHead + WireTail bytes.
//
// WireConn is safe for one reader and one writer at a time, concurrently.
type WireConn struct {
	net.Conn
	scheme string

	rmu     sync.Mutex // guards rbuf, pending, rerr: the reader's buffer
	rbuf    []byte
	pending []byte // read from the network, not yet handed to the reader
	rerr    error  // returned once pending is drained

	mu        sync.Mutex // guards everything below
	dirs      [2]wireDir // indexed by Side
	xorKey    int        // -1 until the key byte was read
	tlsVer    uint16     // from the ServerHello, 0 until then
	tlsSuite  uint16
	last      WireUnit // last unit read
	haveLast  bool
	capturing bool
	written   []WireUnit // units written during CaptureWrites
	dropped   int        // units written past MaxWriteUnits
}

var _ net.Conn = (*WireConn)(nil)

// NewWireConn wraps c, the client side of a connection that speaks scheme
// (a name from schemes.Names; an unknown name records chunks).
func NewWireConn(c net.Conn, scheme string) *WireConn {
	w := &WireConn{Conn: c, scheme: scheme, xorKey: -1, rbuf: make([]byte, wireReadBuffer)}
	w.dirs[Client] = wireDir{side: Client, need: -1}
	w.dirs[Server] = wireDir{side: Server, need: -1}
	return w
}

// Read reads from the connection, returning at most the rest of the
// current unit.
func (w *WireConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	w.rmu.Lock()
	defer w.rmu.Unlock()
	if len(w.pending) == 0 {
		if w.rerr != nil {
			err := w.rerr
			w.rerr = nil
			return 0, err
		}
		n, err := w.Conn.Read(w.rbuf)
		if n == 0 {
			return 0, err
		}
		// Deadline errors are not sticky on a net.Conn: return this one
		// once, after the bytes that came with it.
		w.pending, w.rerr = w.rbuf[:n], err
	}
	w.mu.Lock()
	k := w.consume(&w.dirs[Server], w.pending[:min(len(p), len(w.pending))])
	w.mu.Unlock()
	copy(p, w.pending[:k])
	w.pending = w.pending[k:]
	return k, nil
}

// Write writes p and records the units it completes.
func (w *WireConn) Write(p []byte) (int, error) {
	n, err := w.Conn.Write(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	for b := p[:n]; len(b) > 0; {
		b = b[w.consume(&w.dirs[Client], b):]
	}
	return n, err
}

// LastRead returns the unit most recently handed to the reader in full,
// and false before the first.
func (w *WireConn) LastRead() (WireUnit, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last, w.haveLast
}

// CaptureWrites runs send, which writes through w, and returns the units
// its writes completed: at most MaxWriteUnits, and the number of further
// ones that were not kept. Writes outside CaptureWrites are not kept.
// Calls of CaptureWrites must not overlap.
func (w *WireConn) CaptureWrites(send func() error) (units []WireUnit, dropped int, err error) {
	w.mu.Lock()
	w.capturing, w.written, w.dropped = true, nil, 0
	w.mu.Unlock()
	err = send()
	w.mu.Lock()
	defer w.mu.Unlock()
	units, dropped = w.written, w.dropped
	w.capturing, w.written, w.dropped = false, nil, 0
	return units, dropped, err
}

// wireDir is the framing state of one direction.
type wireDir struct {
	side  Side
	n     int       // units completed
	frame wireFrame // of the current unit, fixed when it starts
	size  int       // bytes of the current unit so far
	need  int       // the current unit's size once known, or -1
	head  []byte
	tail  []byte
	lost  bool // the framing stopped making sense: record chunks
	// encrypted is set once this direction's TLS records are protected.
	encrypted bool
}

type wireFrameKind int

const (
	frameChunk  wireFrameKind = iota // one Read or Write
	frameLine                        // up to and including LF
	frameFixed                       // n bytes
	frameRecord                      // an n-byte header that gives the length
)

type wireFrame struct {
	kind wireFrameKind
	n    int
}

// frameForLocked returns the shape of d's next unit.
func (w *WireConn) frameForLocked(d *wireDir) wireFrame {
	if d.lost {
		return wireFrame{kind: frameChunk}
	}
	switch w.scheme {
	case "plain":
		return wireFrame{kind: frameLine}
	case "xor":
		if d.side == Server && d.n == 0 {
			return wireFrame{kind: frameFixed, n: 1}
		}
		return wireFrame{kind: frameRecord, n: 2}
	case "aes-cbc", "aes-cbc-hmac":
		if d.n == 0 {
			return wireFrame{kind: frameFixed, n: schemes.HelloLen}
		}
		return wireFrame{kind: frameRecord, n: schemes.RecordHeaderLen}
	case "tls", "mtls":
		return wireFrame{kind: frameRecord, n: 5}
	}
	return wireFrame{kind: frameChunk}
}

// recordSize returns the size of the record whose header is hdr, and false
// when the header makes no sense for the scheme.
func (w *WireConn) recordSize(hdr []byte) (int, bool) {
	switch w.scheme {
	case "xor":
		return 2 + int(binary.BigEndian.Uint16(hdr)), true
	case "aes-cbc", "aes-cbc-hmac":
		n := binary.BigEndian.Uint32(hdr)
		if n > maxWireRecord {
			return 0, false
		}
		return schemes.RecordHeaderLen + int(n), true
	case "tls", "mtls":
		n := int(binary.BigEndian.Uint16(hdr[3:5]))
		if hdr[0] < tlsChangeCipherSpec || hdr[0] > tlsApplicationData+1 || hdr[1] != 3 || n > maxTLSRecord {
			return 0, false
		}
		return 5 + n, true
	}
	return 0, false
}

// consume adds the bytes at the start of b that belong to d's current unit,
// completes the unit if they end it, and returns how many it took (at
// least one). A chunk unit is all of b. Called with w.mu held.
func (w *WireConn) consume(d *wireDir, b []byte) int {
	if d.size == 0 {
		d.frame = w.frameForLocked(d)
	}
	k, done := len(b), false
	switch d.frame.kind {
	case frameChunk:
		done = true
	case frameLine:
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			k, done = i+1, true
		}
	case frameFixed:
		k = min(len(b), d.frame.n-d.size)
		done = d.size+k == d.frame.n
	case frameRecord:
		if d.need < 0 && d.size+len(b) >= d.frame.n {
			hdr := append(d.head[:d.size:d.size], b[:d.frame.n-d.size]...)
			if n, ok := w.recordSize(hdr); ok {
				d.need = n
			} else {
				// Not a header after all: from now on every chunk is
				// a unit, starting with what is here.
				d.lost = true
				d.frame = wireFrame{kind: frameChunk}
				done = true
				break
			}
		}
		if d.need >= 0 {
			k = min(len(b), d.need-d.size)
			done = d.size+k == d.need
		}
	}
	d.add(b[:k])
	if done {
		w.completeLocked(d)
	}
	return k
}

// add appends b to the unit in progress, keeping its head and tail.
func (d *wireDir) add(b []byte) {
	d.size += len(b)
	if room := WireHead - len(d.head); room > 0 {
		n := min(room, len(b))
		d.head = append(d.head, b[:n]...)
		b = b[n:]
	}
	if len(b) == 0 {
		return
	}
	d.tail = append(d.tail, b...)
	if len(d.tail) > 2*WireTail {
		d.tail = append(d.tail[:0], d.tail[len(d.tail)-WireTail:]...)
	}
}

// completeLocked turns d's unit in progress into a WireUnit, labels it and
// keeps it where it belongs.
func (w *WireConn) completeLocked(d *wireDir) {
	tail := d.tail
	if len(tail) > WireTail {
		tail = tail[len(tail)-WireTail:]
	}
	u := WireUnit{
		Scheme: w.scheme,
		Dir:    d.side.String(),
		Size:   d.size,
		Head:   append([]byte(nil), d.head...),
		Tail:   append([]byte(nil), tail...),
	}
	w.labelLocked(d, &u)
	d.n++
	d.size, d.need, d.head, d.tail = 0, -1, d.head[:0], d.tail[:0]
	switch {
	case d.side == Server:
		w.last, w.haveLast = u, true
	case w.capturing && len(w.written) < MaxWriteUnits:
		w.written = append(w.written, u)
	case w.capturing:
		w.dropped++
	}
}

// labelLocked names the unit and its parts, and learns what later units
// need: the xor key, the TLS version and cipher suite.
func (w *WireConn) labelLocked(d *wireDir, u *WireUnit) {
	if d.frame.kind == frameChunk {
		u.Kind = "bytes"
		u.Parts = []WirePart{{Name: "bytes", Len: u.Size}}
		u.Reveals = "bytes that do not follow the scheme's framing"
		return
	}
	switch w.scheme {
	case "plain":
		labelLine(u)
	case "xor":
		w.labelXORLocked(d, u)
	case "aes-cbc", "aes-cbc-hmac":
		labelAES(d, u)
	case "tls", "mtls":
		w.labelTLSLocked(d, u)
	}
}

func labelLine(u *WireUnit) {
	u.Kind = "line"
	end := len("\n")
	if u.Size >= 2 && u.PartBytes(WirePart{Off: u.Size - 2, Len: 1}, 1)[0] == '\r' {
		end = len("\r\n")
	}
	text := u.Size - end
	u.Parts = []WirePart{{Name: "text", Len: text}, {Name: "newline", Off: text, Len: end}}
	shown := u.Head[:min(text, len(u.Head))]
	u.Reveals = "the line as it is: " + quoteCut(shown, text)
}

func (w *WireConn) labelXORLocked(d *wireDir, u *WireUnit) {
	if d.frame.kind == frameFixed {
		key := schemes.XORKeyFromWire(u.Head[0])
		w.xorKey = int(key)
		u.Kind = "key byte"
		u.Parts = []WirePart{{Name: "key byte", Len: 1,
			Note: fmt.Sprintf("key = 0x%02x - %d = 0x%02x", u.Head[0], schemes.XORKeyOffset, key)}}
		u.Reveals = "the key itself: every record can be read with it"
		return
	}
	n := u.Size - 2
	u.Kind = "record"
	u.Parts = []WirePart{
		{Name: "length", Len: 2, Note: fmt.Sprintf("%d bytes follow", n)},
		{Name: "body", Off: 2, Len: n, Note: "the message XOR the key"},
	}
	if w.xorKey < 0 {
		u.Reveals = "the message XORed with one byte: 256 guesses find the key"
		return
	}
	body := u.Head[2:min(u.Size, len(u.Head))]
	plain := make([]byte, len(body))
	for i, c := range body {
		plain[i] = c ^ byte(w.xorKey)
	}
	u.Parts[1].Note = fmt.Sprintf("the message XOR 0x%02x", w.xorKey)
	u.Reveals = fmt.Sprintf("%s (key 0x%02x, from the key byte)", quoteCut(plain, n), w.xorKey)
}

func labelAES(d *wireDir, u *WireUnit) {
	if d.frame.kind == frameFixed {
		u.Kind = "hello"
		id := u.Head[5]
		u.Parts = []WirePart{
			{Name: "magic", Len: len(schemes.HelloMagic), Note: fmt.Sprintf("%q", u.Head[:len(schemes.HelloMagic)])},
			{Name: "version", Off: 4, Len: 1},
			{Name: "scheme id", Off: 5, Len: 1, Note: schemes.SchemeName(id)},
			{Name: "nonce", Off: 6, Len: schemes.NonceLen, Note: "fresh per connection, public"},
		}
		u.Reveals = "which scheme is spoken, and the nonces (public by design)"
		return
	}
	mac := u.Scheme == "aes-cbc-hmac"
	tag := 0
	if mac {
		tag = schemes.RecordTagLen
	}
	seq := d.n - 1 // the hello was unit 0
	u.Kind = "record"
	if seq == 0 {
		u.Kind = "key confirmation record"
	}
	body := u.Size - schemes.RecordHeaderLen
	ct := body - schemes.RecordIVLen - tag
	u.Parts = []WirePart{{Name: "length", Len: schemes.RecordHeaderLen, Note: fmt.Sprintf("%d bytes follow", body)}}
	if ct < 16 || ct%16 != 0 {
		u.Parts = append(u.Parts, WirePart{Name: "body", Off: schemes.RecordHeaderLen, Len: body, Note: "not a well-formed record"})
		u.Reveals = "a record that will not decrypt"
		return
	}
	off := schemes.RecordHeaderLen
	u.Parts = append(u.Parts,
		WirePart{Name: "IV", Off: off, Len: schemes.RecordIVLen, Note: "random, public"},
		WirePart{Name: "ciphertext", Off: off + schemes.RecordIVLen, Len: ct, Note: blocks(ct / 16)})
	if mac {
		u.Parts = append(u.Parts, WirePart{Name: "tag", Off: off + schemes.RecordIVLen + ct, Len: tag,
			Note: fmt.Sprintf("HMAC-SHA256 over seq %d, length, IV, ciphertext", seq)})
	}
	u.Reveals = fmt.Sprintf("a message of %d-%d bytes, and when; not its text", ct-16, ct-1)
	if !mac {
		u.Reveals += ", and no tag stops her flipping its bits"
	}
}

func (w *WireConn) labelTLSLocked(d *wireDir, u *WireUnit) {
	typ, n := u.Head[0], u.Size-5
	name := recordNames[typ]
	if name == "" {
		name = fmt.Sprintf("type %d", typ)
	}
	u.Kind = "TLS " + name + " record"
	u.Parts = []WirePart{{Name: "header", Len: 5, Note: fmt.Sprintf("%s, %d bytes follow", name, n)}}
	payload := u.Head[5:min(u.Size, len(u.Head))]
	switch {
	case typ == tlsChangeCipherSpec && w.tlsVer == tls.VersionTLS13:
		u.Parts = append(u.Parts, WirePart{Name: "payload", Off: 5, Len: n})
		u.Reveals = "nothing: a dummy for middleboxes (RFC 8446 §D.4)"
	case typ == tlsChangeCipherSpec:
		u.Parts = append(u.Parts, WirePart{Name: "payload", Off: 5, Len: n})
		u.Reveals = "that this side encrypts from now on"
		d.encrypted = true
	case typ == tlsHandshake && !d.encrypted:
		msg := "handshake"
		if len(payload) >= 4 {
			msg = handshakeName(payload[0])
			bodyLen := int(payload[1])<<16 | int(payload[2])<<8 | int(payload[3])
			if payload[0] == hsServerHello {
				if sh, ok := parseServerHello(payload[4:min(len(payload), 4+bodyLen)]); ok {
					w.tlsVer, w.tlsSuite = sh.version, sh.suite
					msg += fmt.Sprintf(": %s, %s", versionName(sh.version), tls.CipherSuiteName(sh.suite))
				}
			}
		}
		u.Parts = append(u.Parts, WirePart{Name: "handshake", Off: 5, Len: n, Note: msg})
		u.Reveals = "the handshake in the clear: " + msg
	case typ == tlsAlert && !d.encrypted && n == 2:
		u.Parts = append(u.Parts, WirePart{Name: "alert", Off: 5, Len: 2, Note: alertText(payload)})
		u.Reveals = "an alert in the clear: " + alertText(payload)
	default:
		w.labelSealedLocked(u, n)
	}
}

// labelSealedLocked labels the payload of a protected TLS record: the
// AEAD layout of the negotiated version and suite (RFC 8446 §5.2, RFC 5288
// §3 for TLS 1.2 GCM, RFC 7905 for ChaCha20-Poly1305 in TLS 1.2).
func (w *WireConn) labelSealedLocked(u *WireUnit, n int) {
	const tag = 16
	nonce, inner := 0, 0
	suite := tls.CipherSuiteName(w.tlsSuite)
	switch {
	case w.tlsVer == tls.VersionTLS13:
		inner = 1 // the real content type travels inside, after the content
	case w.tlsVer == tls.VersionTLS12 && strings.Contains(suite, "_GCM_"):
		nonce = 8
	case w.tlsVer == tls.VersionTLS12 && strings.Contains(suite, "CHACHA20"):
	default:
		u.Parts = append(u.Parts, WirePart{Name: "encrypted", Off: 5, Len: n})
		u.Reveals = fmt.Sprintf("%d encrypted bytes, and when", n)
		return
	}
	ct := n - nonce - tag
	if ct < inner {
		u.Parts = append(u.Parts, WirePart{Name: "encrypted", Off: 5, Len: n, Note: "too short for " + suite})
		u.Reveals = "a record that will not decrypt"
		return
	}
	if nonce > 0 {
		u.Parts = append(u.Parts, WirePart{Name: "nonce", Off: 5, Len: nonce, Note: "explicit, public"})
	}
	note := suite
	if inner > 0 {
		note += "; the content type is inside"
	}
	u.Parts = append(u.Parts,
		WirePart{Name: "ciphertext", Off: 5 + nonce, Len: ct, Note: note},
		WirePart{Name: "tag", Off: 5 + nonce + ct, Len: tag, Note: "AEAD tag"})
	u.Reveals = fmt.Sprintf("%d bytes of plaintext, so its length, and when; not its text", ct-inner)
}

func blocks(n int) string {
	if n == 1 {
		return "AES-256-CBC, 1 block"
	}
	return fmt.Sprintf("AES-256-CBC, %d blocks", n)
}

var handshakeNames = map[byte]string{
	hsClientHello:         "ClientHello",
	hsServerHello:         "ServerHello",
	hsNewSessionTicket:    "NewSessionTicket",
	hsEncryptedExtensions: "EncryptedExtensions",
	hsCertificate:         "Certificate",
	hsServerKeyExchange:   "ServerKeyExchange",
	hsCertificateRequest:  "CertificateRequest",
	hsCertificateVerify:   "CertificateVerify",
	hsFinished:            "Finished",
}

func handshakeName(t byte) string {
	if s, ok := handshakeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("handshake message %d", t)
}

// quoteCut quotes the kept bytes b of a text of n bytes, marking text that
// was not kept.
func quoteCut(b []byte, n int) string {
	q := fmt.Sprintf("%q", b)
	if len(b) < n {
		q += fmt.Sprintf(" ... (%d bytes in all)", n)
	}
	return q
}
