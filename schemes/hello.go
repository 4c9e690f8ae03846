package schemes

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"unicode/utf8"
)

// The hello that opens aes-cbc-hmac and aes-cbc connections (PROTOCOL.md,
// "Hello"): HelloMagic ‖ version(1) ‖ scheme id(1) ‖ nonce(16).
const (
	// HelloMagic starts every hello.
	HelloMagic = "PRLY"
	// HelloVersion is the only hello version this package speaks.
	HelloVersion = 1
	// NonceLen is the length of the random nonce in a hello.
	NonceLen = 16
	// HelloLen is the length of a hello on the wire.
	HelloLen = len(HelloMagic) + 1 + 1 + NonceLen
)

// schemeIDs is the table of one-byte scheme ids carried in a hello
// (PROTOCOL.md, "Scheme ids"). The ids are part of the wire format: never
// renumber them.
var schemeIDs = [...]string{0: "plain", 1: "xor", 2: "aes-cbc", 3: "aes-cbc-hmac", 4: "tls", 5: "mtls"}

// SchemeID returns the hello id of the named scheme, and false for a name
// without one.
func SchemeID(name string) (byte, bool) {
	for id, n := range schemeIDs {
		if n == name {
			return byte(id), true
		}
	}
	return 0, false
}

// SchemeName returns the scheme name of a hello id, or "" for an id that is
// not in the table.
func SchemeName(id byte) string {
	if int(id) < len(schemeIDs) {
		return schemeIDs[id]
	}
	return ""
}

// Hello is the first message of each side of an aes-cbc-hmac or aes-cbc
// connection.
type Hello struct {
	Version  byte
	SchemeID byte
	Nonce    [NonceLen]byte
}

// errNotHello is wrapped by every ParseHello error.
var errNotHello = errors.New("schemes: not a parley hello")

// ParseHello parses the hello at the start of b; bytes after the first
// HelloLen are ignored, so b may be the start of a recorded stream. It checks
// only the length and the magic: Version and SchemeID are returned as
// received, and the caller decides whether it speaks them (the handshake
// reports a *MismatchError when it does not). ParseHello does not retain b.
func ParseHello(b []byte) (Hello, error) {
	if len(b) < HelloLen {
		return Hello{}, fmt.Errorf("%w: %d bytes, want %d", errNotHello, len(b), HelloLen)
	}
	if string(b[:len(HelloMagic)]) != HelloMagic {
		return Hello{}, fmt.Errorf("%w: starts with %q, want %q", errNotHello, b[:len(HelloMagic)], HelloMagic)
	}
	h := Hello{Version: b[4], SchemeID: b[5]}
	copy(h.Nonce[:], b[6:HelloLen])
	return h, nil
}

// AppendHello appends the wire form of h to dst.
func AppendHello(dst []byte, h Hello) []byte {
	dst = append(dst, HelloMagic...)
	dst = append(dst, h.Version, h.SchemeID)
	return append(dst, h.Nonce[:]...)
}

// check reports whether h is a hello of version HelloVersion for the scheme
// want, as a *MismatchError when it is not.
func (h Hello) check(want string) error {
	if h.Version != HelloVersion {
		return &MismatchError{Want: want, Got: fmt.Sprintf("parley hello version %d", h.Version)}
	}
	if got := SchemeName(h.SchemeID); got != want {
		if got == "" {
			got = fmt.Sprintf("an unknown scheme (id %d)", h.SchemeID)
		}
		return &MismatchError{Want: want, Got: got}
	}
	return nil
}

// readHello reads exactly one hello from c and never more, so the records
// that follow stay unread. As soon as the bytes read so far cannot start a
// hello it stops and reports a *MismatchError that names what the peer seems
// to speak: waiting for the full HelloLen bytes could hang on a peer, such
// as a plain client, that sends fewer and then waits for us.
func readHello(c io.Reader, want string) (Hello, error) {
	var buf [HelloLen]byte
	n := 0
	for n < HelloLen {
		m, err := c.Read(buf[n:])
		n += m
		if k := min(n, len(HelloMagic)); string(buf[:k]) != HelloMagic[:k] {
			return Hello{}, &MismatchError{Want: want, Got: diagnose(c, buf[:n], err)}
		}
		if n == HelloLen {
			break
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if n == 0 {
					return Hello{}, fmt.Errorf("schemes: the peer closed the connection before its %s hello: %w", want, io.ErrUnexpectedEOF)
				}
				err = io.ErrUnexpectedEOF
			}
			return Hello{}, fmt.Errorf("schemes: failed to read the %s hello (%d of %d bytes): %w", want, n, HelloLen, err)
		}
	}
	h, err := ParseHello(buf[:])
	if err != nil {
		return Hello{}, err
	}
	return h, nil
}

// diagnose guesses what a peer whose first bytes are not a hello speaks.
// When first is too short to tell (an xor server's key byte arrives in a
// write of its own), it reads more, up to diagnoseLen bytes or the first
// error: the connection is failing anyway, and the caller's deadline
// bounds the wait for a peer that sent fewer and stopped.
func diagnose(r io.Reader, first []byte, err error) string {
	b := make([]byte, len(first), max(len(first), diagnoseLen))
	copy(b, first)
	for {
		got := GuessScheme(b)
		// One printable byte may be an xor key byte rather than text:
		// take "plain" only with a whole line or enough bytes.
		sure := got != "" && (got != "plain" || bytes.IndexByte(b, '\n') >= 0)
		if sure || err != nil || len(b) >= diagnoseLen {
			return got
		}
		var m int
		m, err = r.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
	}
}

// diagnoseLen is the fewest bytes from which GuessScheme recognises every
// scheme: an xor key byte, a record header and four bytes of text.
const diagnoseLen = 1 + xorHeaderLen + 4

// GuessScheme names the scheme that first, the first bytes one side of a
// connection sent, most likely belongs to, or returns "" when it cannot
// tell. It is a best-effort heuristic for error messages and the capture
// tool: a parley hello names its scheme; a TLS handshake record means tls
// (or mtls, which starts the same); readable text means plain; an xor
// server's key byte followed by a record that decodes to text means xor.
func GuessScheme(first []byte) string {
	switch {
	case len(first) == 0:
		return ""
	case bytes.HasPrefix(first, []byte(HelloMagic)):
		if len(first) > 5 {
			return SchemeName(first[5])
		}
		return ""
	case len(first) >= 3 && first[0] == 0x16 && first[1] == 0x03 && first[2] <= 0x04:
		// A TLS handshake record: content type 22, legacy version 3.x
		// (RFC 8446 §5.1).
		return "tls"
	case LooksLikeText(first):
		return "plain"
	case looksLikeXOR(first):
		return "xor"
	}
	return ""
}

// LooksLikeText reports whether b is UTF-8 text without control characters
// other than tab, CR and LF, as the line schemes carry. A rune cut off at
// the end of b still counts. GuessScheme and the capture tool's dissectors
// use it to recognise plain text.
func LooksLikeText(b []byte) bool {
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size <= 1 {
			return !utf8.FullRune(b)
		}
		if r < 0x20 && r != '\t' && r != '\r' && r != '\n' || r == 0x7f {
			return false
		}
		b = b[size:]
	}
	return true
}

// looksLikeXOR reports whether b starts like an xor server: the key byte
// plus 10, then a record header and at least four bytes of the record that
// decode to text.
func looksLikeXOR(b []byte) bool {
	if len(b) < 1+xorHeaderLen+4 {
		return false
	}
	key := XORKeyFromWire(b[0])
	n := int(binary.BigEndian.Uint16(b[1:3]))
	body := b[3:min(len(b), 3+n)]
	if n == 0 || len(body) < 4 {
		return false
	}
	dec := make([]byte, len(body))
	for i, c := range body {
		dec[i] = c ^ key
	}
	return LooksLikeText(dec)
}

// plainRefusal is the line a record-scheme server sends to a peer that
// spoke plain text, so that nc users and plain clients see why the
// connection closes.
func plainRefusal(scheme string) []byte {
	return []byte(fmt.Sprintf("! parley: this room speaks %s, not plain: join with --scheme %s\n", scheme, scheme))
}

// refuseMismatch tells a mismatched peer, in its own language where we can,
// which scheme we speak, and returns err. Write errors are ignored: the
// mismatch is what the caller needs to hear about.
func refuseMismatch(c net.Conn, scheme string, err error) error {
	var me *MismatchError
	if errors.As(err, &me) && me.Got == "plain" {
		c.Write(plainRefusal(scheme))
	}
	return err
}
