package schemes

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
)

func init() {
	register(Properties{
		Name:             "aes-cbc-hmac",
		Summary:          "AES-256-CBC + HMAC-SHA256 records (encrypt-then-MAC) under per-connection keys derived from a pre-shared key",
		Confidentiality:  true,
		Integrity:        true,
		ReplayProtection: true,
		Leaks: []string{
			"that parley aes-cbc-hmac is spoken (the hello is in the clear)",
			"every message's length to within 16 bytes, and when each one is sent",
			"who talks to whom, and how much",
		},
		Weaknesses: []string{
			"everyone who holds the pre-shared key can read all traffic and pose as the server or any member",
			"no forward secrecy: a leaked key decrypts every recorded past session",
			"names are self-asserted inside the room",
			"a passphrase-derived key falls to a dictionary attack if the passphrase is short",
		},
		Teaches: "confidentiality + integrity from a pre-shared key; lengths and timing still leak; key distribution is the hard part",
	}, func(cfg Config) (Scheme, error) { return newAESScheme("aes-cbc-hmac", true, cfg) })

	register(Properties{
		Name:            "aes-cbc",
		Summary:         "INSECURE: aes-cbc-hmac without the tag, for the CBC bit-flipping and padding-oracle labs",
		Insecure:        true,
		Warning:         "INSECURE: aes-cbc encrypts but does not authenticate, so anyone on the path can flip chosen bits of a message undetected, and a padding oracle decrypts it.",
		Confidentiality: true,
		Leaks: []string{
			"that parley aes-cbc is spoken (the hello is in the clear)",
			"every message's length to within 16 bytes, and when each one is sent",
		},
		Weaknesses: []string{
			"CBC bit-flipping: flipping a bit of the IV or of a ciphertext block flips the same bit of the next plaintext block",
			"records can be replayed, reordered, dropped or moved between positions undetected",
			"with --padding-oracle the server tells bad padding apart, which decrypts any record",
			"everyone who holds the pre-shared key can read all traffic; no forward secrecy",
		},
		Teaches: "encryption without integrity is malleable: why the MAC matters",
	}, func(cfg Config) (Scheme, error) { return newAESScheme("aes-cbc", false, cfg) })
}

// confirmMessage is the plaintext of the key-confirmation record that each
// side sends first (sequence number 0) right after the hellos: a side whose
// pre-shared key differs fails on it, so both sides learn about a wrong key
// during the handshake, whatever the room does next (PROTOCOL.md,
// "Key confirmation").
const confirmMessage = "parley key confirmation v1"

// aesScheme is aes-cbc-hmac (mac) or aes-cbc (!mac).
type aesScheme struct {
	name   string
	mac    bool
	psk    []byte
	max    int
	oracle bool
}

var _ Scheme = (*aesScheme)(nil)

func newAESScheme(name string, mac bool, cfg Config) (Scheme, error) {
	if len(cfg.PSK) != PSKLen {
		if len(cfg.PSK) == 0 {
			return nil, fmt.Errorf("schemes: %s needs a pre-shared key (Config.PSK)", name)
		}
		return nil, fmt.Errorf("schemes: %s needs a %d-byte pre-shared key, got %d bytes", name, PSKLen, len(cfg.PSK))
	}
	if mac && cfg.PaddingOracle {
		return nil, errors.New("schemes: the padding oracle exists only in aes-cbc; aes-cbc-hmac checks the tag before the padding")
	}
	return &aesScheme{name: name, mac: mac, psk: bytes.Clone(cfg.PSK), max: cfg.maxMessage(), oracle: cfg.PaddingOracle}, nil
}

func (s *aesScheme) Name() string { return s.name }

func (s *aesScheme) Properties() Properties { p, _ := Describe(s.name); return p }

func (s *aesScheme) hello() (Hello, error) {
	id, _ := SchemeID(s.name)
	h := Hello{Version: HelloVersion, SchemeID: id}
	if _, err := rand.Read(h.Nonce[:]); err != nil {
		return Hello{}, fmt.Errorf("schemes: failed to draw a hello nonce: %w", err)
	}
	return h, nil
}

// Server reads the client's hello, answers with its own hello and its
// key-confirmation record in one write, and checks the client's
// key-confirmation record. A peer that speaks another scheme gets a
// *MismatchError (and, if it spoke plain text, one "! ..." line saying which
// scheme to use; if it sent another parley hello, our hello, so it learns
// too); a wrong pre-shared key gets an error wrapping ErrWrongKey.
func (s *aesScheme) Server(c net.Conn) (Conn, error) {
	ch, err := readHello(c, s.name)
	if err != nil {
		return nil, refuseMismatch(c, s.name, err)
	}
	sh, err := s.hello()
	if err != nil {
		return nil, err
	}
	if err := ch.check(s.name); err != nil {
		c.Write(AppendHello(nil, sh))
		return nil, err
	}
	c2s, s2c := DeriveSessionKeys(s.psk, ch.Nonce, sh.Nonce)
	rc, err := s.newConn(c, s2c, c2s, true)
	if err != nil {
		return nil, err
	}
	out := AppendHello(nil, sh)
	if out, err = rc.out.sealRandom(out, []byte(confirmMessage)); err != nil {
		return nil, err
	}
	if _, err := c.Write(out); err != nil {
		return nil, fmt.Errorf("schemes: failed to send the %s hello: %w", s.name, err)
	}
	if err := rc.readConfirm(); err != nil {
		return nil, err
	}
	return rc, nil
}

// Client sends its hello, reads the server's hello and key-confirmation
// record, sends its own key-confirmation record (always, so that a server
// with a different key learns it too) and then checks the server's. Errors
// are as for Server.
func (s *aesScheme) Client(c net.Conn) (Conn, error) {
	ch, err := s.hello()
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(AppendHello(nil, ch)); err != nil {
		return nil, fmt.Errorf("schemes: failed to send the %s hello: %w", s.name, err)
	}
	sh, err := readHello(c, s.name)
	if err != nil {
		return nil, err
	}
	if err := sh.check(s.name); err != nil {
		return nil, err
	}
	c2s, s2c := DeriveSessionKeys(s.psk, ch.Nonce, sh.Nonce)
	rc, err := s.newConn(c, c2s, s2c, false)
	if err != nil {
		return nil, err
	}
	// Read the server's confirmation before writing ours, so that a
	// synchronous transport such as net.Pipe cannot deadlock.
	body, rerr := rc.in.readRecord()
	if rerr != nil {
		return nil, fmt.Errorf("schemes: failed to read the server's key confirmation: %w", rerr)
	}
	out, err := rc.out.sealRandom(nil, []byte(confirmMessage))
	if err != nil {
		return nil, err
	}
	_, werr := c.Write(out)
	if err := rc.checkConfirm(body); err != nil {
		return nil, err
	}
	if werr != nil {
		return nil, fmt.Errorf("schemes: failed to send the key confirmation: %w", werr)
	}
	return rc, nil
}

func (s *aesScheme) newConn(c net.Conn, out, in DirectionKeys, server bool) (*recordConn, error) {
	se, err := newSealer(out, s.mac)
	if err != nil {
		return nil, err
	}
	op, err := newOpener(in, s.mac)
	if err != nil {
		return nil, err
	}
	detail := "AES-256-CBC + HMAC-SHA256, pre-shared key"
	if !s.mac {
		detail = "AES-256-CBC without MAC (INSECURE), pre-shared key"
	}
	return &recordConn{
		Conn:   c,
		in:     inHalf{opener: *op, r: c, maxBody: maxRecordBody(max(s.max, len(confirmMessage)), s.mac)},
		out:    outHalf{sealer: *se},
		scheme: s.name,
		mac:    s.mac,
		max:    s.max,
		oracle: s.oracle && server,
		peer:   Peer{Detail: detail},
	}, nil
}

// recordConn is the Conn of aes-cbc-hmac and aes-cbc. Its reader uses only
// in and its writer only out (see Conn for the concurrency contract).
type recordConn struct {
	net.Conn
	in     inHalf
	out    outHalf
	scheme string
	mac    bool
	max    int
	oracle bool // report bad padding as ErrBadPadding and carry on (aes-cbc server only)
	peer   Peer
}

var _ Conn = (*recordConn)(nil)

// wrongKeyError is the error of a key-confirmation record that fails: it is
// ErrWrongKey and also the scheme's record error.
type wrongKeyError struct{ cause error }

func (e *wrongKeyError) Error() string {
	return fmt.Sprintf("%v: its first record failed to authenticate (%v)", ErrWrongKey, e.cause)
}

func (e *wrongKeyError) Unwrap() []error { return []error{ErrWrongKey, e.cause} }

// readConfirm reads and checks the peer's key-confirmation record.
func (rc *recordConn) readConfirm() error {
	body, err := rc.in.readRecord()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("schemes: the client closed the connection before confirming the key (it may use a different pre-shared key): %w", io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("schemes: failed to read the client's key confirmation: %w", err)
	}
	return rc.checkConfirm(body)
}

func (rc *recordConn) checkConfirm(body []byte) error {
	msg, kind := rc.in.open(body)
	if kind == 0 && string(msg) == confirmMessage {
		return nil
	}
	err := &wrongKeyError{cause: recordError(kind, rc.mac, false)}
	if kind == 0 {
		// Authentic but not the confirmation: a peer that is not this
		// protocol version. Still a failed first record.
		err.cause = fmt.Errorf("%w: unexpected first record", recordError(badLength, rc.mac, false))
	}
	rc.in.err = err
	return err
}

// ReadMessage reads, checks and decrypts the next record. Every failure is
// fatal (sticky; the caller must close the Conn), except a message over the limit inside
// an authentic record (ErrMessageTooLong, the Conn stays usable) and, on an
// aes-cbc server with Config.PaddingOracle, bad padding (ErrBadPadding, the
// Conn stays usable: the deliberate oracle). aes-cbc-hmac reports every
// record that fails as ErrBadRecordMAC.
func (rc *recordConn) ReadMessage() ([]byte, error) {
	h := &rc.in
	if h.err != nil {
		return nil, h.err
	}
	body, err := h.readRecord()
	if err != nil {
		h.err = err
		if errors.Is(err, ErrRecordTooLarge) {
			rc.Conn.Close()
		}
		return nil, err
	}
	msg, kind := h.open(body)
	if kind != 0 {
		err := recordError(kind, rc.mac, rc.oracle)
		if err == ErrBadPadding {
			return nil, err
		}
		// Stop at the first bad record: nothing after it can be trusted,
		// and a peer probing for an oracle gets one answer per connection.
		// The caller closes the connection; the room first says why, as a
		// TLS bad_record_mac alert would (RFC 8446 §6.2). That answer is the
		// same for every failure, so it is no oracle.
		h.err = fmt.Errorf("schemes: %s record %d rejected: %w", rc.scheme, h.seq-1, err)
		return nil, h.err
	}
	if len(msg) > rc.max {
		return nil, fmt.Errorf("schemes: received a %d-byte message: %w (limit %d bytes)", len(msg), ErrMessageTooLong, rc.max)
	}
	return msg, nil
}

// WriteLines seals every '\n'-terminated message of b as its own record
// with a fresh IV and sends all of them in one Write. A message over the
// limit fails the call before anything is sent (ErrMessageTooLong, the Conn
// stays usable); a write error is sticky.
func (rc *recordConn) WriteLines(b []byte) error {
	h := &rc.out
	if h.err != nil {
		return h.err
	}
	out, err := h.sealLines(b, rc.max)
	if err != nil || len(out) == 0 {
		return err
	}
	if _, err := rc.Conn.Write(out); err != nil {
		h.err = fmt.Errorf("schemes: failed to send %s records: %w", rc.scheme, err)
		return h.err
	}
	return nil
}

func (rc *recordConn) Peer() Peer { return rc.peer }
