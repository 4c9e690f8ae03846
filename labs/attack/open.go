package attack

import (
	"bufio"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/parley-edu/parley/schemes"
)

// The openings: each checks that both sides speak the relay's scheme,
// passes the handshake through (or, for tls, runs one on each leg), and
// sets the session's codec and readers. They report a failure as an Event
// and return false; the caller then closes both legs.

// greetingScheme returns S from a room greeting "* parley room NAME
// (scheme S)".
func greetingScheme(line string) (string, bool) {
	if !strings.HasPrefix(line, "* parley room ") {
		return "", false
	}
	i := strings.LastIndex(line, "(scheme ")
	if i < 0 || !strings.HasSuffix(line, ")") {
		return "", true
	}
	return line[i+len("(scheme ") : len(line)-1], true
}

// guess names the scheme whose first bytes look like b: schemes'
// GuessScheme, plus a TLS alert record (what a TLS room answers to a
// parley hello).
func guess(b []byte) string {
	if len(b) >= 2 && b[0] == 0x15 && b[1] == 0x03 {
		return "tls"
	}
	// An xor room's key byte, a length, and a greeting.
	const greeting = "* parley room "
	if len(b) >= 3+len(greeting) {
		key := schemes.XORKeyFromWire(b[0])
		ok := true
		for i := range len(greeting) {
			ok = ok && b[3+i]^key == greeting[i]
		}
		if ok {
			return "xor"
		}
	}
	return schemes.GuessScheme(b)
}

// mismatch reports that who ("the room", or the member's label) does not
// speak the relay's scheme. got is what it seems to speak, or "".
func (s *session) mismatch(who, got, why string) {
	d := fmt.Sprintf("%s does not speak %s", who, s.scheme)
	if got != "" && got != s.scheme {
		d = fmt.Sprintf("%s speaks %s, not %s", who, got, s.scheme)
	}
	if why != "" {
		d += " (" + why + ")"
	}
	if who == "the room" {
		if got != "" && got != s.scheme {
			d += fmt.Sprintf("; start the relay with --scheme %s", got)
		} else {
			d += "; check --scheme and --upstream"
		}
	}
	s.emit(Event{Kind: KindMismatch, Detail: d})
}

// silent reports a room that said nothing where it should speak first.
func (s *session) silent(err error) {
	switch {
	case isTimeout(err):
		s.mismatch("the room", "", fmt.Sprintf("it said nothing within %s, as aes-cbc, aes-cbc-hmac, tls and mtls rooms do: they wait for the client to speak first", s.r.cfg.HandshakeTimeout))
	case errors.Is(err, io.EOF):
		s.mismatch("the room", "", "it closed the connection without a word")
	default:
		s.emit(Event{Kind: KindError, Detail: fmt.Sprintf("reading from the room failed: %v", err)})
	}
}

// peek returns at least n bytes buffered from br, and whatever else is
// already buffered.
func peek(br *bufio.Reader, n int) ([]byte, error) {
	if _, err := br.Peek(n); err != nil {
		b, _ := br.Peek(br.Buffered())
		return b, err
	}
	return br.Peek(br.Buffered())
}

func (s *session) openPlain() bool {
	s.raw()
	s.codec = lineCodec{}
	first, err := peek(s.ur, 3)
	if err != nil && len(first) == 0 {
		s.silent(err)
		return false
	}
	if g := guess(first); g != "plain" {
		// Wait for a little more, to name what the room speaks.
		if more, _ := peek(s.ur, 3+len("* parley room ")); len(more) > len(first) {
			first = more
		}
		s.mismatch("the room", guess(first), "")
		return false
	}
	u, err := s.codec.read(s.ur)
	if err != nil {
		s.silent(err)
		return false
	}
	line := string(u.text)
	if got, ok := greetingScheme(line); !ok || (got != "" && got != "plain") {
		if rest, ok := strings.CutPrefix(line, "! parley: this room speaks "); ok {
			got, _, _ = strings.Cut(rest, ",")
		}
		s.mismatch("the room", got, fmt.Sprintf("its first line is %q", preview(line)))
		return false
	}
	return s.roomRecord(0, u)
}

func (s *session) openXOR() bool {
	s.raw()
	first, err := peek(s.ur, 3)
	if err != nil {
		if len(first) > 0 {
			s.mismatch("the room", guess(first), "")
			return false
		}
		s.silent(err)
		return false
	}
	if g := guess(first); g == "plain" || g == "tls" || strings.HasPrefix(string(first), schemes.HelloMagic[:3]) {
		s.mismatch("the room", g, "")
		return false
	}
	keyByte, _ := s.ur.ReadByte()
	xc := &xorCodec{key: schemes.XORKeyFromWire(keyByte)}
	u, err := xc.read(s.ur)
	if err != nil {
		s.silent(err)
		return false
	}
	detail := fmt.Sprintf("xor key 0x%02x, read from the room's first byte 0x%02x (key + %d): every message is now readable", xc.key, keyByte, schemes.XORKeyOffset)
	if s.r.cfg.XORBruteForce {
		k, ok := bruteForceXOR(u.body)
		if !ok {
			s.mismatch("the room", "", "no key of the 256 turns its first record into a parley greeting")
			return false
		}
		xc.key = k
		detail = fmt.Sprintf("xor key 0x%02x, found by trying all 256 keys on the room's greeting (as if Mallory had missed the key byte): every message is now readable", k)
	}
	u = xc.unit(u.raw)
	if got, ok := greetingScheme(string(u.text)); !ok || (got != "" && got != "xor") {
		s.mismatch("the room", got, "its first record does not decode to a parley greeting")
		return false
	}
	s.codec = xc
	s.emit(Event{Kind: KindKey, Detail: detail})
	if _, err := s.cconn.Write([]byte{keyByte}); err != nil {
		s.end(false, err)
		return false
	}
	return s.roomRecord(0, u)
}

// readHello reads one hello from br, stopping as soon as the bytes cannot
// start one. It returns the bytes read (and any already buffered after
// them, on a mismatch).
func readHello(br *bufio.Reader) (schemes.Hello, []byte, error) {
	var buf []byte
	for len(buf) < schemes.HelloLen {
		b, err := br.ReadByte()
		if err != nil {
			return schemes.Hello{}, buf, err
		}
		buf = append(buf, b)
		k := min(len(buf), len(schemes.HelloMagic))
		if string(buf[:k]) != schemes.HelloMagic[:k] {
			extra, _ := br.Peek(br.Buffered())
			buf = append(buf, extra...)
			return schemes.Hello{}, buf, &schemes.MismatchError{Got: guess(buf)}
		}
	}
	h, err := schemes.ParseHello(buf)
	return h, buf, err
}

// helloScheme names the scheme a hello speaks, or describes it.
func helloScheme(h schemes.Hello) string {
	if h.Version != schemes.HelloVersion {
		return fmt.Sprintf("parley hello version %d", h.Version)
	}
	if n := schemes.SchemeName(h.SchemeID); n != "" {
		return n
	}
	return fmt.Sprintf("an unknown scheme (id %d)", h.SchemeID)
}

func (s *session) openAES() bool {
	s.raw()
	s.codec = &aesCodec{mac: s.scheme == "aes-cbc-hmac"}
	label := s.label()
	ch, raw, err := readHello(s.cr)
	if err != nil {
		if mm, ok := errors.AsType[*schemes.MismatchError](err); ok {
			s.mismatch(label, mm.Got, "")
		} else if isTimeout(err) {
			s.mismatch(label, "", fmt.Sprintf("it sent no hello within %s", s.r.cfg.HandshakeTimeout))
		} else {
			s.emit(Event{Kind: KindClosed, From: label, To: "room", Detail: fmt.Sprintf("%s %s before its hello", label, closedHow(err))})
		}
		return false
	}
	if got := helloScheme(ch); got != s.scheme {
		s.mismatch(label, got, "")
		return false
	}
	if _, err := s.uconn.Write(raw); err != nil {
		s.end(true, err)
		return false
	}
	s.emit(Event{Kind: KindHello, From: label, To: "room", Size: len(raw), Detail: fmt.Sprintf("%s hello, nonce %s: public, and worthless without the pre-shared key", s.scheme, hex.EncodeToString(ch.Nonce[:]))})
	sh, raw, err := readHello(s.ur)
	if err == nil && helloScheme(sh) != s.scheme {
		err = &schemes.MismatchError{Got: helloScheme(sh)}
	}
	if err != nil {
		// Pass on what the room said, so that the member learns it too.
		s.cconn.Write(raw)
		if mm, ok := errors.AsType[*schemes.MismatchError](err); ok {
			s.mismatch("the room", mm.Got, "")
		} else if len(raw) == 0 {
			s.silent(err)
		} else {
			s.mismatch("the room", guess(raw), "")
		}
		return false
	}
	if _, err := s.cconn.Write(raw); err != nil {
		s.end(false, err)
		return false
	}
	s.emit(Event{Kind: KindHello, From: "room", To: label, Size: len(raw), Detail: fmt.Sprintf("%s hello, nonce %s: public, and worthless without the pre-shared key", s.scheme, hex.EncodeToString(sh.Nonce[:]))})
	return true
}

func preview(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// keyLogTo feeds the TLS secrets Mallory holds into the recording.
type keyLogTo struct{ r *Relay }

func (k keyLogTo) Write(p []byte) (int, error) {
	k.r.cfg.Recorder.AddKeyLog(p)
	return len(p), nil
}

func (s *session) keyLog() io.Writer {
	if s.r.cfg.Recorder == nil {
		return nil
	}
	return keyLogTo{s.r}
}

// openTLS terminates the member's TLS with Mallory's certificate, then
// connects to the room as a TLS client herself, without verifying it.
func (s *session) openTLS() bool {
	label := s.label()
	mutual := s.scheme == "mtls"
	scfg := &tls.Config{Certificates: s.r.certs, MinVersion: tls.VersionTLS12, KeyLogWriter: s.keyLog()}
	if mutual {
		scfg.ClientAuth = tls.RequestClientCert
	}
	srv := tls.Server(s.client, scfg)
	if err := srv.Handshake(); err != nil {
		s.memberRefused(label, err)
		return false
	}
	cs := srv.ConnectionState()
	detail := fmt.Sprintf("%s accepted Mallory's certificate without checking it (%s, %s): the original projects' mistake; she reads and rewrites everything it sends", label, tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
	if mutual {
		detail = fmt.Sprintf("%s accepted Mallory's certificate without checking it (%s)", label, tls.VersionName(cs.Version))
		if len(cs.PeerCertificates) > 0 {
			detail += fmt.Sprintf(" and showed its own client certificate (CN=%s), which is useless to Mallory without its private key", cs.PeerCertificates[0].Subject.CommonName)
		}
	}
	s.emit(Event{Kind: KindIntercepted, Detail: detail})
	if mutual {
		s.mtlsUpstream()
		srv.Close()
		return false
	}
	host, _, _ := net.SplitHostPort(s.r.cfg.Upstream)
	asked := false
	ccfg := &tls.Config{
		// Mallory does not care who the room is: she only needs a session.
		InsecureSkipVerify: true,
		ServerName:         host,
		MinVersion:         tls.VersionTLS12,
		KeyLogWriter:       s.keyLog(),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			asked = true
			return &tls.Certificate{}, nil
		},
	}
	cli := tls.Client(s.up, ccfg)
	if err := cli.Handshake(); err != nil {
		if rh, ok := errors.AsType[tls.RecordHeaderError](err); ok {
			s.mismatch("the room", guess(rh.RecordHeader[:]), "")
		} else if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			s.mismatch("the room", "", "it closed the connection during the TLS handshake")
		} else if isTimeout(err) {
			s.mismatch("the room", "", "it did not complete a TLS handshake in time")
		} else {
			s.emit(Event{Kind: KindError, Detail: fmt.Sprintf("the TLS handshake with the room failed: %v", err)})
		}
		srv.Close()
		return false
	}
	if asked {
		s.mismatch("the room", "mtls", "it asks for a client certificate")
		srv.Close()
		cli.Close()
		return false
	}
	s.cconn, s.uconn = srv, cli
	s.cr = bufio.NewReaderSize(srv, 64<<10)
	s.ur = bufio.NewReaderSize(cli, 64<<10)
	s.codec = lineCodec{}
	return true
}

// memberRefused explains a failed TLS handshake with the member.
func (s *session) memberRefused(label string, err error) {
	if rh, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		s.mismatch(label, guess(rh.RecordHeader[:]), "")
		return
	}
	alert, ok := receivedAlert(err)
	if !ok {
		if errors.Is(err, io.EOF) {
			s.emit(Event{Kind: KindBlocked, Detail: fmt.Sprintf("%s closed the connection during the TLS handshake, most likely because it does not trust Mallory's certificate", label)})
			return
		}
		s.emit(Event{Kind: KindError, Detail: fmt.Sprintf("the TLS handshake with %s failed: %v", label, err)})
		return
	}
	reason, issuer := certReason(s.r.Certificate())
	s.emit(Event{Kind: KindBlocked, Detail: fmt.Sprintf("%s rejected our certificate (%s): it answered with the TLS alert %q because it does not trust %q, who signed Mallory's certificate; she reads nothing", label, reason, alert, issuer)})
}

// mtlsUpstream tries to join the mtls room as Mallory. The room requires a
// client certificate from its own CA, which she does not have, so this
// always ends in a BLOCKED event.
func (s *session) mtlsUpstream() {
	key := make([]byte, 32)
	sch, err := schemes.New("mtls", schemes.Config{Certificates: s.r.certs, InsecureSkipVerify: true, SigKey: key, KeyLog: s.keyLog()})
	if err != nil {
		s.emit(Event{Kind: KindError, Detail: err.Error()})
		return
	}
	c, err := sch.Client(s.up)
	if err == nil {
		c.Close()
		s.emit(Event{Kind: KindBlocked, Detail: fmt.Sprintf("the room accepted Mallory's certificate as %q, but without that member's signing key every message she relays fails its signature", c.Peer().Identity)})
		return
	}
	if ce, ok := errors.AsType[*schemes.CertificateError](err); ok {
		reason := ce.Reason.String()
		if ce.Reason == schemes.ReasonOther {
			reason = "refused"
		}
		s.emit(Event{Kind: KindBlocked, Detail: fmt.Sprintf("the room rejected our client certificate (%s): Mallory has no certificate from the room's CA, so she cannot connect to it (%s)", strings.ReplaceAll(reason, "-", " "), strings.TrimPrefix(ce.Error(), "schemes: "))})
		return
	}
	if mm, ok := errors.AsType[*schemes.MismatchError](err); ok {
		s.mismatch("the room", mm.Got, "")
		return
	}
	s.emit(Event{Kind: KindBlocked, Detail: fmt.Sprintf("the room refused Mallory: %v", err)})
}
