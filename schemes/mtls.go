package schemes

// Lock order in this file: a client Conn's read token (readTok) before its
// mu; wmu is only ever held alone.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

func init() {
	register(Properties{
		Name:             "mtls",
		Summary:          "TLS 1.3 with a required client certificate, and the HMAC signature protocol inside",
		Confidentiality:  true,
		Integrity:        true,
		ServerAuth:       true,
		ClientAuth:       true,
		ReplayProtection: true,
		ForwardSecrecy:   true,
		Leaks: []string{
			"who talks to whom (addresses, ports) and when",
			"the server name the client asks for (SNI, in the clear)",
			"the size and timing of every message",
			"in TLS 1.2, both certificates, so the client's name too (in 1.3 they are encrypted)",
		},
		Weaknesses: []string{
			"whoever holds a user's certificate key and signing key is that user",
			"the signing secret and the CA key are single points of failure: whoever steals them can sign for anyone",
		},
		Teaches: "both sides authenticated; names bound to certificates; per-message integrity receipts",
	}, func(cfg Config) (Scheme, error) {
		t, err := newTLSScheme("mtls", cfg)
		if err != nil {
			return nil, err
		}
		return &mtlsScheme{tls: t}, nil
	})
}

// Constants of the mtls signature protocol. PROTOCOL.md gives the exact
// lines and byte layouts; capture dissectors and labs use these.
const (
	// SigContext prefixes the HMAC input of a 270 SIG receipt.
	SigContext = "parley-sig-v1"
	// DeliverContext prefixes the HMAC input of a 280 delivery.
	DeliverContext = "parley-deliver-v1"
	// UserKeyContext prefixes the name in the derivation of K_user.
	UserKeyContext = "parley user key"
	// SignatureSize is the size of every signature, in bytes, before hex.
	SignatureSize = sha256.Size
)

// Client commands and server reply codes of the signature protocol.
const (
	CmdHello = "HELLO"
	CmdData  = "DATA"
	CmdPass  = "PASS"
	CmdFail  = "FAIL"
	CmdQuit  = "QUIT"

	ReplyBye      = 221 // "221 BYE"
	ReplyOK       = 260 // "260 OK <name>" after HELLO, "260 OK" after PASS
	ReplySig      = 270 // "270 SIG <hex>"
	ReplyDelivery = 280 // "280 <hex> <line>"
)

// UserKey derives a user's signing key from the room signing secret:
// K_user = HMAC-SHA256(secret, "parley user key" ‖ name) (RFC 2104).
// `parley certs issue client NAME` writes it to NAME.sigkey.
func UserKey(secret []byte, name string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(UserKeyContext))
	m.Write([]byte(name))
	return m.Sum(nil)
}

// SignMessage returns the 270 SIG receipt for the seq-th message (counting
// from 0) a client sent: HMAC-SHA256(K_user, "parley-sig-v1" ‖ seq as 8
// bytes big-endian ‖ message), where message is the DATA block's lines,
// un-stuffed and joined by "\n", without a final "\n".
func SignMessage(key []byte, seq uint64, message []byte) []byte {
	return sign(key, SigContext, seq, message)
}

// SignDelivery returns the signature of the seq-th 280 delivery (counting
// from 0) a server sent: HMAC-SHA256(K_user, "parley-deliver-v1" ‖ seq as
// 8 bytes big-endian ‖ line), line without its "\n".
func SignDelivery(key []byte, seq uint64, line []byte) []byte {
	return sign(key, DeliverContext, seq, line)
}

func sign(key []byte, context string, seq uint64, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seq)
	m.Write([]byte(context))
	m.Write(s[:])
	m.Write(msg)
	return m.Sum(nil)
}

// ErrBadSignature reports a signature that did not check. On a client Conn
// it is not fatal: the Conn stays usable.
var ErrBadSignature = errors.New("schemes: bad signature")

// SignatureError reports a signature that did not check, on an mtls client
// Conn. It wraps ErrBadSignature and is not fatal.
//
// From ReadMessage, the server's 280 delivery of Line failed its check:
// the line is not to be trusted, and the caller should flag it. From
// WriteLines (Outgoing), the server's 270 SIG receipt for the message Line
// did not match ours: the client answered FAIL and the message was not
// delivered.
type SignatureError struct {
	Line     string
	Outgoing bool
}

func (e *SignatureError) Error() string {
	if e.Outgoing {
		return fmt.Sprintf("schemes: the server's receipt for %q did not match our signature, so the message was not delivered (wrong signing key?)", e.Line)
	}
	return fmt.Sprintf("schemes: bad signature on a line from the server: %q", e.Line)
}

func (e *SignatureError) Unwrap() error { return ErrBadSignature }

// ReplyError reports a 5xx reply from the mtls server to a message the
// client sent; the message was not delivered. It is not fatal.
type ReplyError struct {
	Code int
	Text string
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("schemes: the server refused the message: %d %s", e.Code, e.Text)
}

// ProtocolError reports a line that breaks the signature protocol. It is
// fatal.
type ProtocolError struct {
	Line string
	Want string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("schemes: mtls protocol error: got %q, want %s", e.Line, e.Want)
}

// mtlsScheme runs the signature protocol inside a mutual TLS session.
type mtlsScheme struct{ tls *tlsScheme }

var _ Scheme = (*mtlsScheme)(nil)

func (s *mtlsScheme) Name() string { return "mtls" }

func (s *mtlsScheme) Properties() Properties { p, _ := Describe("mtls"); return p }

// maxHelloLines bounds the lines a client may send before HELLO.
const maxHelloLines = 16

// Server runs the TLS handshake with a required client certificate that
// chains to Config.RootCAs and allows client authentication, derives K_user
// from Config.SigningSecret and the certificate's common name, then waits
// for HELLO and answers "260 OK <name>", all within the caller's deadline on
// c. Peer.Identity is the common name. Errors are those of the tls scheme,
// plus a *ProtocolError or io.EOF when the client never says HELLO.
func (s *mtlsScheme) Server(c net.Conn) (Conn, error) {
	if len(s.tls.cfg.SigningSecret) == 0 {
		return nil, errors.New("schemes: mtls server needs the room signing secret (Config.SigningSecret)")
	}
	tc, err := s.tls.serverHandshake(c)
	if err != nil {
		return nil, err
	}
	cs := tc.ConnectionState()
	name := cs.PeerCertificates[0].Subject.CommonName
	if name == "" {
		return nil, &CertificateError{Of: "client", Reason: ReasonOther, Err: errors.New("the certificate has no common name, so it names nobody")}
	}
	sc := newMTLSServerConn(tc, UserKey(s.tls.cfg.SigningSecret, name), name, s.tls.max)
	sc.peer = Peer{Identity: name, Detail: sessionDetail(cs)}
	if err := sc.awaitHello(); err != nil {
		return nil, err
	}
	return sc, nil
}

// Client runs the TLS handshake with Config.Certificates as the client
// certificate, verifying the server as the tls scheme does, then sends
// HELLO and waits for "260 OK <name>" within the caller's deadline on c.
// A server that refuses the certificate is reported as a *CertificateError
// with Remote set (in TLS 1.3 this surfaces only here, after the handshake,
// RFC 8446 §4.4.2.4).
func (s *mtlsScheme) Client(c net.Conn) (Conn, error) {
	cfg := s.tls.cfg
	if len(cfg.SigKey) == 0 {
		return nil, errors.New("schemes: mtls client needs its signing key (Config.SigKey)")
	}
	tc, err := s.tls.clientHandshake(c)
	if err != nil {
		return nil, err
	}
	cc := newMTLSClientConn(tc, cfg.SigKey, s.tls.max)
	cc.peer = s.tls.clientPeer(tc)
	if err := cc.hello(); err != nil {
		if ce := remoteCertificateError(err, "client", cfg.Certificates); ce != nil {
			return nil, ce
		}
		return nil, err
	}
	cc.peer.Detail += ", signed in as " + cc.name
	return cc, nil
}

// verb reports whether line is the command cmd; commands are
// case-insensitive, as in SMTP (RFC 5321 §2.4).
func verb(line []byte, cmd string) bool { return bytes.EqualFold(line, []byte(cmd)) }

// mtlsServerConn is the server side of the signature protocol over conn
// (a *tls.Conn). ReadMessage owns lr, recvSeq, msg and pending; WriteLines
// owns sendSeq and wbuf; both write under wmu so that lines never
// interleave.
type mtlsServerConn struct {
	conn net.Conn
	key  []byte
	name string
	peer Peer
	max  int

	lr      *lineReader
	recvSeq uint64
	msg     []byte
	pending [][]byte
	rerr    error

	wmu     sync.Mutex
	sendSeq uint64
	wbuf    []byte
	werr    error
}

var _ Conn = (*mtlsServerConn)(nil)

func newMTLSServerConn(conn net.Conn, key []byte, name string, max int) *mtlsServerConn {
	return &mtlsServerConn{conn: conn, key: key, name: name, max: max, lr: newLineReader(conn, max)}
}

func (c *mtlsServerConn) reply(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := io.WriteString(c.conn, s+"\n")
	return err
}

func (c *mtlsServerConn) awaitHello() error {
	for range maxHelloLines {
		line, err := c.lr.readLine()
		switch {
		case errors.Is(err, ErrMessageTooLong):
			if err := c.reply("500 line too long"); err != nil {
				return err
			}
			continue
		case err != nil:
			return fmt.Errorf("schemes: mtls: waiting for HELLO from %s: %w", c.conn.RemoteAddr(), err)
		case verb(line, CmdHello):
			return c.reply("260 OK " + c.name)
		case verb(line, CmdQuit):
			c.reply("221 BYE")
			return fmt.Errorf("schemes: mtls: %s quit before HELLO: %w", c.conn.RemoteAddr(), io.EOF)
		}
		if err := c.reply("503 send HELLO first"); err != nil {
			return err
		}
	}
	return &ProtocolError{Line: "(many lines)", Want: "HELLO"}
}

// ReadMessage returns the next line of a message that the client sent in a
// DATA block and accepted with PASS. A block over the message limit is
// refused with 552 and reported as a non-fatal ErrMessageTooLong; a FAIL,
// an unknown command or a misplaced one is answered and skipped. QUIT is
// answered with 221 BYE and returns io.EOF. Other errors are fatal and
// sticky.
func (c *mtlsServerConn) ReadMessage() ([]byte, error) {
	if len(c.pending) > 0 {
		m := c.pending[0]
		c.pending = c.pending[1:]
		return m, nil
	}
	if c.rerr != nil {
		return nil, c.rerr
	}
	m, err := c.readMessage()
	if err != nil && !errors.Is(err, ErrMessageTooLong) {
		c.rerr = err
	}
	return m, err
}

func (c *mtlsServerConn) readMessage() ([]byte, error) {
	for {
		line, err := c.lr.readLine()
		if errors.Is(err, ErrMessageTooLong) {
			if err := c.reply("500 line too long"); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		switch {
		case verb(line, CmdData):
			lines, err := c.readData()
			if err != nil {
				return nil, err
			}
			if lines != nil {
				c.pending = lines[1:]
				return lines[0], nil
			}
		case verb(line, CmdQuit):
			c.reply("221 BYE")
			return nil, io.EOF
		case verb(line, CmdHello):
			err = c.reply("260 OK " + c.name)
		case verb(line, CmdPass), verb(line, CmdFail):
			err = c.reply("503 no message is waiting for PASS or FAIL")
		default:
			err = c.reply("500 unknown command")
		}
		if err != nil {
			return nil, err
		}
	}
}

// readData reads a DATA block up to its "." line, un-stuffing lines that
// start with "." (RFC 5321 §4.5.2), signs it, and settles it with the
// client. It returns the block's lines if the client answered PASS, nil if
// the message was not delivered for a reason the client was told, and an
// error wrapping ErrMessageTooLong for a block over the limit.
func (c *mtlsServerConn) readData() ([][]byte, error) {
	c.msg = c.msg[:0]
	tooLong, first := false, true
	for {
		line, err := c.lr.readLine()
		if errors.Is(err, ErrMessageTooLong) {
			tooLong = true
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(line) == 1 && line[0] == '.' {
			break
		}
		if len(line) > 0 && line[0] == '.' {
			line = line[1:]
		}
		if tooLong {
			continue
		}
		if !first {
			c.msg = append(c.msg, '\n')
		}
		first = false
		if len(c.msg)+len(line) > c.max {
			tooLong = true
			continue
		}
		c.msg = append(c.msg, line...)
	}
	if tooLong {
		if err := c.reply(fmt.Sprintf("552 message too long (limit %d bytes); not delivered", c.max)); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w (limit %d bytes)", ErrMessageTooLong, c.max)
	}

	// The sequence number counts receipts sent, delivered or not, so both
	// sides move on together whatever the answer (PROTOCOL.md).
	sig := SignMessage(c.key, c.recvSeq, c.msg)
	c.recvSeq++
	if err := c.reply("270 SIG " + hex.EncodeToString(sig)); err != nil {
		return nil, err
	}
	answer, err := c.lr.readLine()
	if err != nil && !errors.Is(err, ErrMessageTooLong) {
		return nil, err
	}
	switch {
	case err != nil:
		err = c.reply("500 line too long; message not delivered")
	case verb(answer, CmdPass):
		if err := c.reply("260 OK"); err != nil {
			return nil, err
		}
		return bytes.Split(c.msg, []byte("\n")), nil
	case verb(answer, CmdFail):
		err = c.reply("550 message not delivered: the signature did not check")
	case verb(answer, CmdQuit):
		c.reply("221 BYE")
		return nil, io.EOF
	default:
		err = c.reply("503 expected PASS or FAIL; message not delivered")
	}
	return nil, err
}

// WriteLines sends each line of b as one signed 280 delivery, all in one
// write. Errors are fatal and sticky.
func (c *mtlsServerConn) WriteLines(b []byte) error {
	if c.werr != nil {
		return c.werr
	}
	c.wbuf = c.wbuf[:0]
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			i = len(b)
		}
		line := b[:i]
		b = b[min(i+1, len(b)):]
		var sig [2 * SignatureSize]byte
		hex.Encode(sig[:], SignDelivery(c.key, c.sendSeq, line))
		c.sendSeq++
		c.wbuf = append(c.wbuf, "280 "...)
		c.wbuf = append(c.wbuf, sig[:]...)
		c.wbuf = append(c.wbuf, ' ')
		c.wbuf = append(c.wbuf, line...)
		c.wbuf = append(c.wbuf, '\n')
	}
	c.wmu.Lock()
	_, err := c.conn.Write(c.wbuf)
	c.wmu.Unlock()
	if err != nil {
		c.werr = err
	}
	return err
}

func (c *mtlsServerConn) Close() error                       { return c.conn.Close() }
func (c *mtlsServerConn) SetReadDeadline(t time.Time) error  { return c.conn.SetReadDeadline(t) }
func (c *mtlsServerConn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }
func (c *mtlsServerConn) LocalAddr() net.Addr                { return c.conn.LocalAddr() }
func (c *mtlsServerConn) RemoteAddr() net.Addr               { return c.conn.RemoteAddr() }
func (c *mtlsServerConn) Peer() Peer                         { return c.peer }

// mtlsClientConn is the client side of the signature protocol over conn.
//
// The server's replies (260, 270, 5xx, 221) and its 280 deliveries share
// one stream, while ReadMessage and WriteLines run in different
// goroutines. Whoever holds readTok reads from lr: ReadMessage passes the
// replies it meets to WriteLines through replies, and WriteLines queues the
// deliveries it meets for ReadMessage in queue. Deliveries are verified by
// the token holder, so recvSeq advances in stream order.
type mtlsClientConn struct {
	conn net.Conn
	key  []byte
	peer Peer
	name string // from "260 OK <name>"
	max  int

	readTok chan struct{} // holds a value while someone reads lr
	replies chan []byte   // one reply read by ReadMessage for WriteLines
	lr      *lineReader   // only with readTok
	rbuf    []byte        // only in ReadMessage: the line it returned last
	recvSeq uint64        // only with readTok

	mu    sync.Mutex // guards queue, rerr
	queue []delivery
	rerr  error
	dead  chan struct{} // closed when rerr is set

	wmu     sync.Mutex // serialises writes on conn
	sendSeq uint64     // only in WriteLines
	werr    error      // only in WriteLines
}

type delivery struct {
	line []byte
	bad  bool
}

// maxQueued bounds the deliveries WriteLines holds for ReadMessage while it
// waits for a reply.
const maxQueued = 4096

var _ Conn = (*mtlsClientConn)(nil)

func newMTLSClientConn(conn net.Conn, key []byte, max int) *mtlsClientConn {
	// A delivery line carries "280 ", the signature and a space around the
	// message.
	return &mtlsClientConn{
		conn: conn, key: key, max: max,
		readTok: make(chan struct{}, 1),
		replies: make(chan []byte, 1),
		dead:    make(chan struct{}),
		lr:      newLineReader(conn, max+5+2*SignatureSize),
	}
}

func (c *mtlsClientConn) write(s []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.conn.Write(s)
	return err
}

// hello sends HELLO and reads "260 OK <name>". It runs before the Conn is
// shared, so it reads lr directly.
func (c *mtlsClientConn) hello() error {
	if err := c.write([]byte(CmdHello + "\n")); err != nil {
		return fmt.Errorf("schemes: mtls: failed to send HELLO: %w", err)
	}
	line, err := c.lr.readLine()
	if err != nil {
		return fmt.Errorf("schemes: mtls: waiting for the answer to HELLO: %w", err)
	}
	code, text, ok := parseReply(line)
	if !ok || code != ReplyOK || !bytes.HasPrefix(text, []byte("OK ")) || len(text) == 3 {
		if ok && code >= 500 {
			return &ReplyError{Code: code, Text: string(text)}
		}
		return &ProtocolError{Line: string(line), Want: "260 OK <name>"}
	}
	c.name = string(text[3:])
	return nil
}

// parseReply splits a server reply "NNN text" into its code and text.
func parseReply(line []byte) (code int, text []byte, ok bool) {
	if len(line) < 3 || (len(line) > 3 && line[3] != ' ') {
		return 0, nil, false
	}
	n, err := strconv.Atoi(string(line[:3]))
	if err != nil || n < 100 || line[0] == '+' || line[0] == '-' {
		return 0, nil, false
	}
	if len(line) > 3 {
		text = line[4:]
	}
	return n, text, true
}

// parseDelivery splits "280 <hex> <line>" into the signature and the line.
func parseDelivery(line []byte) (sig, text []byte, ok bool) {
	const hexLen = 2 * SignatureSize
	if len(line) < 4+hexLen+1 || !bytes.HasPrefix(line, []byte("280 ")) || line[4+hexLen] != ' ' {
		return nil, nil, false
	}
	sig = make([]byte, SignatureSize)
	if _, err := hex.Decode(sig, line[4:4+hexLen]); err != nil {
		return nil, nil, false
	}
	return sig, line[4+hexLen+1:], true
}

// fail records a fatal read error and wakes a waiting WriteLines.
func (c *mtlsClientConn) fail(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rerr == nil {
		c.rerr = err
		close(c.dead)
	}
	return c.rerr
}

// readOneLocked reads one line with readTok held. It returns a delivery
// (verified) or a reply; a reply has isReply set.
func (c *mtlsClientConn) readOneLocked() (d delivery, reply []byte, err error) {
	line, err := c.lr.readLine()
	if errors.Is(err, ErrMessageTooLong) {
		// Only deliveries can be long, and the server counted it.
		c.recvSeq++
		return delivery{}, nil, err
	}
	if err != nil {
		return delivery{}, nil, c.fail(err)
	}
	if bytes.HasPrefix(line, []byte("280 ")) {
		sig, text, ok := parseDelivery(line)
		if !ok {
			return delivery{}, nil, c.fail(&ProtocolError{Line: string(line), Want: "280 <hex HMAC-SHA256> <line>"})
		}
		want := SignDelivery(c.key, c.recvSeq, text)
		c.recvSeq++
		return delivery{line: text, bad: !hmac.Equal(sig, want)}, nil, nil
	}
	if _, _, ok := parseReply(line); !ok {
		return delivery{}, nil, c.fail(&ProtocolError{Line: string(line), Want: "a reply (NNN text) or a 280 delivery"})
	}
	return delivery{}, bytes.Clone(line), nil
}

// ReadMessage returns the next line the server delivered. A line whose
// signature does not check returns a *SignatureError (wrapping
// ErrBadSignature), which is not fatal; so is a delivery over the limit
// (ErrMessageTooLong). "221 BYE" returns io.EOF. Other errors are fatal and
// sticky.
func (c *mtlsClientConn) ReadMessage() ([]byte, error) {
	for {
		if d, ok, err := c.popQueued(); ok || err != nil {
			return deliveryResult(d, err)
		}
		c.readTok <- struct{}{}
		// WriteLines may have queued deliveries while we waited.
		if d, ok, err := c.popQueued(); ok || err != nil {
			<-c.readTok
			return deliveryResult(d, err)
		}
		for {
			d, reply, err := c.readOneLocked()
			if err != nil {
				<-c.readTok
				return nil, err
			}
			if reply == nil {
				// Copy before giving up the token: WriteLines may read
				// into lr's buffer while the caller still holds the line.
				c.rbuf = append(c.rbuf[:0], d.line...)
				d.line = c.rbuf
				<-c.readTok
				return deliveryResult(d, nil)
			}
			if code, _, _ := parseReply(reply); code == ReplyBye {
				<-c.readTok
				return nil, c.fail(io.EOF)
			}
			select {
			case c.replies <- reply:
			default:
				<-c.readTok
				return nil, c.fail(&ProtocolError{Line: string(reply), Want: "a 280 delivery (no reply was awaited)"})
			}
		}
	}
}

func deliveryResult(d delivery, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	if d.bad {
		return nil, &SignatureError{Line: string(d.line)}
	}
	return d.line, nil
}

func (c *mtlsClientConn) popQueued() (delivery, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) > 0 {
		d := c.queue[0]
		c.queue = c.queue[1:]
		return d, true, nil
	}
	return delivery{}, false, c.rerr
}

// awaitReply returns the server's next reply, reading the stream itself
// when no ReadMessage is doing so.
func (c *mtlsClientConn) awaitReply() ([]byte, error) {
	select {
	case r := <-c.replies:
		return r, nil
	case <-c.dead:
		return nil, c.rerr
	case c.readTok <- struct{}{}:
	}
	defer func() { <-c.readTok }()
	// Only the token holder sends on replies, so a reply is either already
	// there or still on the wire.
	select {
	case r := <-c.replies:
		return r, nil
	default:
	}
	for {
		d, reply, err := c.readOneLocked()
		if errors.Is(err, ErrMessageTooLong) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if reply != nil {
			return reply, nil
		}
		c.mu.Lock()
		if len(c.queue) >= maxQueued {
			c.mu.Unlock()
			return nil, c.fail(errors.New("schemes: mtls: too many deliveries while waiting for a reply"))
		}
		c.queue = append(c.queue, delivery{line: bytes.Clone(d.line), bad: d.bad})
		c.mu.Unlock()
	}
}

// WriteLines sends each line of b as its own DATA block, checks the
// server's 270 SIG receipt against its own signature in constant time,
// and answers PASS or FAIL. It stops at the first message that is not
// delivered: a receipt that does not check gives a *SignatureError
// (Outgoing), a 552 gives ErrMessageTooLong and another 5xx a *ReplyError;
// these are not fatal. Other errors are fatal and sticky.
func (c *mtlsClientConn) WriteLines(b []byte) error {
	if c.werr != nil {
		return c.werr
	}
	err := c.writeLines(b)
	var se *SignatureError
	var re *ReplyError
	if err != nil && !errors.Is(err, ErrMessageTooLong) && !errors.As(err, &se) && !errors.As(err, &re) {
		c.werr = err
	}
	return err
}

func (c *mtlsClientConn) writeLines(b []byte) error {
	var block []byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			i = len(b)
		}
		line := b[:i]
		b = b[min(i+1, len(b)):]

		block = append(block[:0], CmdData+"\n"...)
		if len(line) > 0 && line[0] == '.' {
			block = append(block, '.') // dot-stuffing, RFC 5321 §4.5.2
		}
		block = append(block, line...)
		block = append(block, "\n.\n"...)
		if err := c.write(block); err != nil {
			return err
		}
		r, err := c.awaitReply()
		if err != nil {
			return err
		}
		code, text, _ := parseReply(r)
		switch {
		case code == ReplySig && bytes.HasPrefix(text, []byte("SIG ")):
		case code == 552:
			return fmt.Errorf("%w: the server said %q", ErrMessageTooLong, r)
		case code >= 500 && code < 600:
			return &ReplyError{Code: code, Text: string(text)}
		case code == ReplyBye:
			return c.fail(io.EOF)
		default:
			return &ProtocolError{Line: string(r), Want: "270 SIG <hex>"}
		}
		got, err := hex.DecodeString(string(text[4:]))
		if err != nil {
			return &ProtocolError{Line: string(r), Want: "270 SIG <hex>"}
		}
		want := SignMessage(c.key, c.sendSeq, line)
		c.sendSeq++
		ok := hmac.Equal(got, want)
		answer := CmdPass + "\n"
		if !ok {
			answer = CmdFail + "\n"
		}
		if err := c.write([]byte(answer)); err != nil {
			return err
		}
		r, err = c.awaitReply()
		if err != nil {
			return err
		}
		code, text, _ = parseReply(r)
		switch {
		case !ok && code >= 500 && code < 600:
			return &SignatureError{Line: string(line), Outgoing: true}
		case ok && code == ReplyOK:
		case code >= 500 && code < 600:
			return &ReplyError{Code: code, Text: string(text)}
		default:
			return &ProtocolError{Line: string(r), Want: "260 OK"}
		}
	}
	return nil
}

// Close sends QUIT when no write is under way, then closes the connection
// without waiting for 221 BYE.
func (c *mtlsClientConn) Close() error {
	if c.wmu.TryLock() {
		c.conn.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(c.conn, CmdQuit+"\n")
		c.wmu.Unlock()
	}
	return c.conn.Close()
}

func (c *mtlsClientConn) SetReadDeadline(t time.Time) error  { return c.conn.SetReadDeadline(t) }
func (c *mtlsClientConn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }
func (c *mtlsClientConn) LocalAddr() net.Addr                { return c.conn.LocalAddr() }
func (c *mtlsClientConn) RemoteAddr() net.Addr               { return c.conn.RemoteAddr() }
func (c *mtlsClientConn) Peer() Peer                         { return c.peer }
