package attack

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/parley-edu/parley/schemes"
)

// session is one member connection through the relay. The opening runs on
// the connection's goroutine; then one pump per direction runs: the client
// pump alone writes to the room, the room pump alone writes to the member.
type session struct {
	r      *Relay
	id     int
	scheme string

	client, up   *recConn // the TCP legs
	cconn, uconn net.Conn // what the pumps use: the legs, or TLS over them
	cr, ur       *bufio.Reader
	codec        codec

	mu        sync.Mutex // guards the fields below
	name      string     // the member's name, once the room welcomed it
	tampered  string     // the first tampering, for DETECTED
	roomSpoke int        // records the room sent since the last client record was forwarded
	pending   bool       // the record about to be forwarded was tampered with
	lastBad   bool       // the last client record forwarded was tampered with
	sentAfter bool       // a record was forwarded to the room at or after the first tampering
	ended     bool
}

func (s *session) emit(e Event) {
	e.Conn = s.id
	s.r.emit(e)
}

// label names the member: its name once known, else "client N".
func (s *session) label() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.name != "" {
		return s.name
	}
	return fmt.Sprintf("client %d", s.id)
}

func (s *session) aes() bool { return s.scheme == "aes-cbc" || s.scheme == "aes-cbc-hmac" }

func (s *session) run() {
	deadline := time.Now().Add(s.r.cfg.HandshakeTimeout)
	s.client.SetDeadline(deadline)
	s.up.SetDeadline(deadline)
	var ok bool
	switch s.scheme {
	case "plain":
		ok = s.openPlain()
	case "xor":
		ok = s.openXOR()
	case "aes-cbc", "aes-cbc-hmac":
		ok = s.openAES()
	case "tls", "mtls":
		ok = s.openTLS()
	}
	if !ok {
		return
	}
	s.client.SetDeadline(time.Time{})
	s.up.SetDeadline(time.Time{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.pumpClient() }()
	go func() { defer wg.Done(); s.pumpRoom() }()
	wg.Wait()
}

func (s *session) raw() {
	s.cconn, s.uconn = s.client, s.up
	s.cr = bufio.NewReaderSize(s.client, 64<<10)
	s.ur = bufio.NewReaderSize(s.up, 64<<10)
}

// pumpClient relays the member's records to the room, applying the
// actions. Client records are numbered from 1 (the name); in aes the key
// confirmation is record 0.
func (s *session) pumpClient() {
	n := 1
	if s.aes() {
		n = 0
	}
	defer s.drainClient()
	for {
		u, err := s.codec.read(s.cr)
		if err != nil {
			s.end(false, err)
			return
		}
		if s.isEnded() || !s.clientRecord(n, u) {
			return
		}
		n++
	}
}

func (s *session) isEnded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// drainClient reads and discards what the member still sends after the
// room's side ended, until the member closes or drainWait passes, then
// closes the member's leg: closing with unread data would reset the
// connection, and the member would see a reset instead of the close.
func (s *session) drainClient() {
	io.Copy(io.Discard, s.cr)
	s.cconn.Close()
}

// drainWait bounds how long a member may take to close its side once the
// room's side has ended.
const drainWait = 2 * time.Second

// pumpRoom relays the room's records to the member.
func (s *session) pumpRoom() {
	n := 1
	if s.aes() {
		n = 0
	}
	for {
		u, err := s.codec.read(s.ur)
		if err != nil {
			s.end(true, err)
			return
		}
		if !s.roomRecord(n, u) {
			return
		}
		n++
	}
}

func (s *session) clientRecord(n int, u unit) bool {
	cfg := &s.r.cfg
	label := s.label()
	if s.aes() && n == 0 {
		s.emit(Event{Kind: KindOpaque, From: label, To: "room", Record: 0, Size: len(u.raw), Detail: "the key confirmation; without the pre-shared key Mallory cannot read it"})
		return s.send(u.raw)
	}
	if n == cfg.Drop {
		s.emit(Event{Kind: KindDropped, From: label, To: "room", Record: n, Text: string(u.text), Size: len(u.raw), Detail: "Mallory swallowed it; the room never sees it"})
		s.tamper(fmt.Sprintf("Mallory dropped record %d, so the sequence numbers no longer match", n))
		return true
	}
	if u.text != nil {
		s.emit(Event{Kind: KindRead, From: label, To: "room", Record: n, Text: string(u.text)})
		u = s.replace(u, label, "room", n)
	} else {
		s.emit(Event{Kind: KindOpaque, From: label, To: "room", Record: n, Size: len(u.raw), Detail: s.codec.(*aesCodec).describe(u)})
	}
	if cfg.Flip.applies(n) {
		u = s.flip(u, label, n)
	}
	if !s.send(u.raw) {
		return false
	}
	if n == cfg.Replay {
		s.tamper(fmt.Sprintf("Mallory replayed record %d", n))
		if !s.send(u.raw) {
			return false
		}
		s.emit(Event{Kind: KindReplayed, From: label, To: "room", Record: n, Text: string(u.text), Size: len(u.raw), Detail: "Mallory sent it a second time, right behind the original"})
	}
	if n == 1 && cfg.Inject != "" {
		return s.inject(label)
	}
	return true
}

func (s *session) roomRecord(n int, u unit) bool {
	label := s.label()
	switch {
	case s.aes() && n == 0:
		s.emit(Event{Kind: KindOpaque, From: "room", To: label, Record: 0, Size: len(u.raw), Detail: "the key confirmation; without the pre-shared key Mallory cannot read it"})
	case u.text == nil:
		s.emit(Event{Kind: KindOpaque, From: "room", To: label, Record: n, Size: len(u.raw), Detail: s.codec.(*aesCodec).describe(u)})
	default:
		s.emit(Event{Kind: KindRead, From: "room", To: label, Text: string(u.text)})
		s.learnName(string(u.text))
		u = s.replace(u, "room", label, 0)
	}
	s.mu.Lock()
	s.roomSpoke++
	s.mu.Unlock()
	if _, err := s.cconn.Write(u.raw); err != nil {
		s.end(false, err)
		return false
	}
	return true
}

// send writes b to the room. The detection state is updated before the
// write: the room may answer, or fail the record and close, before Write
// returns.
func (s *session) send(b []byte) bool {
	s.mu.Lock()
	s.roomSpoke = 0
	s.sentAfter = s.tampered != ""
	s.lastBad, s.pending = s.pending, false
	s.mu.Unlock()
	if _, err := s.uconn.Write(b); err != nil {
		s.end(true, err)
		return false
	}
	return true
}

// tamper notes the first tampering: in aes-cbc-hmac it is the one the
// room fails on.
func (s *session) tamper(what string) {
	s.mu.Lock()
	if s.tampered == "" {
		s.tampered = what
	}
	s.pending = true
	s.mu.Unlock()
}

// learnName takes the member's name from the room's welcome line,
// "* welcome, NAME. members: ...".
func (s *session) learnName(line string) {
	rest, ok := strings.CutPrefix(line, "* welcome, ")
	if !ok {
		return
	}
	name, _, ok := strings.Cut(rest, ". members: ")
	if !ok || name == "" || strings.ContainsAny(name, " \t") {
		return
	}
	s.mu.Lock()
	s.name = name
	s.mu.Unlock()
}

func (s *session) replace(u unit, from, to string, n int) unit {
	text := string(u.text)
	for _, r := range s.r.cfg.Replace {
		text = strings.ReplaceAll(text, r.Old, r.New)
	}
	if text == string(u.text) {
		return u
	}
	nu, ok := s.codec.encode([]byte(text))
	if !ok {
		s.emit(Event{Kind: KindSkipped, From: from, To: to, Record: n, Detail: "the rewritten message is too long for one record; passed on unchanged"})
		return u
	}
	s.emit(Event{Kind: KindRewrote, From: from, To: to, Record: n, Old: string(u.text), Text: text})
	return nu
}

func (s *session) flip(u unit, label string, n int) unit {
	f := s.r.cfg.Flip
	if f.Offset >= len(u.body) {
		s.emit(Event{Kind: KindSkipped, From: label, To: "room", Record: n, Detail: fmt.Sprintf("cannot flip byte %d: the record body has only %d bytes", f.Offset, len(u.body))})
		return u
	}
	body := bytes.Clone(u.body)
	body[f.Offset] ^= f.Mask
	nu := s.codec.rebody(u, body)
	e := Event{Kind: KindFlipped, From: label, To: "room", Record: n, Size: len(u.raw), Detail: s.predict(len(u.body))}
	if u.text != nil {
		e.Old, e.Text = string(u.text), string(nu.text)
	}
	s.emit(e)
	s.tamper(fmt.Sprintf("Mallory flipped record %d", n))
	return nu
}

// predict says what a flip at the configured offset does to the message
// the receiver gets, for a record body of bodyLen bytes.
func (s *session) predict(bodyLen int) string {
	f := s.r.cfg.Flip
	k, m := f.Offset, f.Mask
	switch s.scheme {
	case "plain", "tls":
		return fmt.Sprintf("byte %d of the message XOR 0x%02x; nothing checks it", k, m)
	case "xor":
		return fmt.Sprintf("byte %d of the record XOR 0x%02x flips the same bits of the message (a fixed-key XOR); nothing checks it", k, m)
	}
	mac := s.scheme == "aes-cbc-hmac"
	tagStart := bodyLen
	if mac {
		tagStart -= schemes.RecordTagLen
	}
	var effect string
	switch {
	case k < schemes.RecordIVLen:
		effect = fmt.Sprintf("flipped byte %d of the IV: plaintext byte %d XOR 0x%02x, and nothing else changes (CBC: P1 = D(C1) XOR IV)", k, k, m)
	case k >= tagStart:
		return fmt.Sprintf("flipped byte %d of the tag: the tag no longer matches, so the room will reject the record as a bad record MAC", k-tagStart)
	default:
		blk, j := (k-schemes.RecordIVLen)/16+1, (k-schemes.RecordIVLen)%16
		if k+16 >= tagStart {
			effect = fmt.Sprintf("flipped byte %d of the last ciphertext block: the last plaintext block decrypts to garbage, so its padding almost surely breaks", j)
		} else {
			effect = fmt.Sprintf("flipped byte %d of ciphertext block %d: plaintext block %d decrypts to garbage and plaintext byte %d of block %d XOR 0x%02x", j, blk, blk, j, blk+1, m)
		}
	}
	if mac {
		return effect + "; but the tag covers the IV and the ciphertext, so the room will reject the record as a bad record MAC"
	}
	return effect + "; nothing checks it"
}

func (s *session) inject(label string) bool {
	text := s.r.cfg.Inject
	u, ok := s.codec.encode([]byte(text))
	detail := "as if from " + label
	if !ok {
		u = s.codec.(*aesCodec).forge(len(text), func(b []byte) { rand.Read(b) })
		detail = fmt.Sprintf("as if from %s: a forged record of random bytes, sized for %d bytes of text (Mallory cannot encrypt without the pre-shared key)", label, len(text))
	}
	s.tamper("Mallory injected a record of her own")
	if !s.send(u.raw) {
		return false
	}
	s.emit(Event{Kind: KindInjected, From: "Mallory", To: "room", Text: text, Size: len(u.raw), Detail: detail})
	return true
}

// end handles the end of one direction: it reports why, then closes both
// legs so that the other pump ends too. room says whether the room's side
// ended (its read or a write to it failed).
func (s *session) end(room bool, err error) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	tampered, spoke, sentAfter, lastBad := s.tampered, s.roomSpoke, s.sentAfter, s.lastBad
	s.mu.Unlock()
	defer s.uconn.Close()
	if room {
		// Pass the close on as a close (FIN, or TLS close_notify), and let
		// the client pump drain what the member still sends.
		defer func() {
			if cw, ok := s.cconn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
				s.cconn.SetReadDeadline(time.Now().Add(drainWait))
				return
			}
			s.cconn.Close()
		}()
	} else {
		defer s.cconn.Close()
	}
	if s.r.isClosed() || errors.Is(err, net.ErrClosed) {
		return
	}
	label := s.label()
	if errors.Is(err, errTooLarge) {
		s.emit(Event{Kind: KindError, Detail: fmt.Sprintf("%v; closed both sides", err)})
		return
	}
	if room {
		// In aes-cbc-hmac any tampered record the room reads is fatal, so
		// once one was sent the room's close is its verdict. In aes-cbc
		// only a flip that breaks the padding is: the room answers the
		// tampered record with at most its one "closing your connection"
		// line and closes, which tells it apart from an ordinary quit
		// (an untampered /quit).
		hmac := s.scheme == "aes-cbc-hmac" && sentAfter
		cbc := s.scheme == "aes-cbc" && tampered != "" && lastBad && spoke <= 1
		if hmac || cbc {
			why := "bad record MAC"
			if cbc {
				why = "bad record: the tampered record no longer decrypts to valid padding"
			}
			s.emit(Event{Kind: KindDetected, From: label, To: "room", Detail: fmt.Sprintf("%s; it closed %s's connection right after the tampering (%s)", why, label, tampered)})
		}
		s.emit(Event{Kind: KindClosed, From: "room", To: label, Detail: fmt.Sprintf("the room %s; Mallory closed %s's connection too", closedHow(err), label)})
		return
	}
	s.emit(Event{Kind: KindClosed, From: label, To: "room", Detail: fmt.Sprintf("%s %s; Mallory closed the room's side too", label, closedHow(err))})
}

func closedHow(err error) string {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed the connection"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset the connection"
	}
	return fmt.Sprintf("failed (%v)", err)
}
