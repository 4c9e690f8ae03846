package attack

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/parley-edu/parley/capture"
	"github.com/parley-edu/parley/schemes"
)

// Config configures a Relay.
type Config struct {
	// Scheme is the room's scheme: plain, xor, aes-cbc, aes-cbc-hmac, tls
	// or mtls.
	Scheme string
	// Listen is the address members connect to ("127.0.0.1:0" picks a
	// free port; see Relay.Addr).
	Listen string
	// Upstream is the room's address. It is dialled once per member
	// connection, so it need not be up when the relay starts.
	Upstream string

	// Replace rewrites message text in both directions, in order, wherever
	// Mallory can read it.
	Replace []Replacement
	// Flip, when not nil, XORs a mask into one byte of client records.
	Flip *Flip
	// Replay, when positive, sends client record number Replay a second
	// time, right behind the original.
	Replay int
	// Drop, when positive, swallows client record number Drop.
	Drop int
	// Inject, when not empty, is sent to the room as if from the client,
	// right after the client's first record (its name).
	Inject string

	// Certificates is Mallory's own certificate for tls and mtls (for
	// example one made by 'parley certs bad rogue-ca'). When empty, NewRelay
	// makes one, signed by a CA of Mallory's own that nobody trusts.
	Certificates []tls.Certificate
	// XORBruteForce makes the xor relay ignore the key byte on the wire and
	// find the key by trying all 256 on the room's greeting, as Mallory
	// would if she had joined late.
	XORBruteForce bool

	// OnEvent receives every event. The relay calls it one event at a time,
	// from its own goroutines; it must not block for long. Nil discards
	// events.
	OnEvent func(Event)
	// Recorder, when not nil, records both legs of every connection (member
	// to Mallory, Mallory to room) as TCP packets, and for tls and mtls the
	// TLS secrets Mallory holds, so that the capture decrypts.
	Recorder *capture.Recorder
	// HandshakeTimeout bounds dialling the room and each side's handshake;
	// 0 means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Logger receives debugging detail; nil discards it.
	Logger *slog.Logger
}

// DefaultHandshakeTimeout bounds dialling the room and the handshakes.
const DefaultHandshakeTimeout = 10 * time.Second

// A Replacement rewrites Old to New in every message Mallory can read.
type Replacement struct {
	Old string `json:"old"`
	New string `json:"new"`
}

// ParseReplacement parses "OLD=NEW". OLD must not be empty; NEW may be.
func ParseReplacement(s string) (Replacement, error) {
	old, new, ok := strings.Cut(s, "=")
	if !ok || old == "" {
		return Replacement{}, fmt.Errorf("attack: replacement %q is not OLD=NEW with a non-empty OLD", s)
	}
	return Replacement{Old: old, New: new}, nil
}

// Flip XORs Mask into the byte at Offset of a client record's body: the
// bytes after the length field (xor, aes-cbc, aes-cbc-hmac; for CBC offset
// 0 is the IV's first byte), or the message itself (plain, tls).
type Flip struct {
	Offset int  `json:"offset"`
	Mask   byte `json:"mask"`
	// Record, when positive, flips only that client record; otherwise
	// every client record from 2 on is flipped (record 1, the member's
	// name, is spared: a garbled name is merely refused by the room).
	Record int `json:"record,omitempty"`
}

// ParseFlip parses "OFFSET:MASK" or "OFFSET:MASK@RECORD", with MASK in
// decimal or 0x hex (1 to 255).
func ParseFlip(s string) (Flip, error) {
	spec, rec, hasRec := strings.Cut(s, "@")
	off, mask, ok := strings.Cut(spec, ":")
	if !ok {
		return Flip{}, fmt.Errorf("attack: flip %q is not OFFSET:MASK", s)
	}
	o, err := strconv.Atoi(off)
	if err != nil || o < 0 {
		return Flip{}, fmt.Errorf("attack: flip %q: offset %q is not a number of 0 or more", s, off)
	}
	m, err := strconv.ParseUint(mask, 0, 8)
	if err != nil || m == 0 {
		return Flip{}, fmt.Errorf("attack: flip %q: mask %q is not a byte from 1 to 255 (decimal or 0x hex)", s, mask)
	}
	f := Flip{Offset: o, Mask: byte(m)}
	if hasRec {
		r, err := strconv.Atoi(rec)
		if err != nil || r < 1 {
			return Flip{}, fmt.Errorf("attack: flip %q: record %q is not a number of 1 or more", s, rec)
		}
		f.Record = r
	}
	return f, nil
}

func (f Flip) String() string {
	s := fmt.Sprintf("%d:0x%02x", f.Offset, f.Mask)
	if f.Record > 0 {
		s += "@" + strconv.Itoa(f.Record)
	}
	return s
}

// applies reports whether f flips client record n.
func (f *Flip) applies(n int) bool {
	if f == nil {
		return false
	}
	if f.Record > 0 {
		return n == f.Record
	}
	return n >= 2
}

// ErrUnknownScheme reports a Config.Scheme the relay does not know.
var ErrUnknownScheme = errors.New("attack: unknown scheme")

// readable reports whether Mallory can read and rewrite messages of scheme
// (for tls: once a member has accepted her certificate).
func readable(scheme string) bool {
	return scheme == "plain" || scheme == "xor" || scheme == "tls"
}

// Check validates cfg and returns, for every action that makes no sense for
// the scheme, one sentence saying why. Such an action is not an error:
// NewRelay leaves it out (or, for --inject on aes, sends a forged record
// instead) and the relay runs in show mode for it.
func (cfg Config) Check() (notes []string, err error) {
	if _, err := schemes.Describe(cfg.Scheme); err != nil {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownScheme, cfg.Scheme, strings.Join(schemes.Names(), ", "))
	}
	if cfg.Upstream == "" {
		return nil, errors.New("attack: the relay needs an upstream address (the room's)")
	}
	if cfg.Replay < 0 || cfg.Drop < 0 {
		return nil, errors.New("attack: record numbers for replay and drop start at 1")
	}
	if cfg.Replay > 0 && cfg.Replay == cfg.Drop {
		return nil, fmt.Errorf("attack: cannot both replay and drop record %d", cfg.Replay)
	}
	for _, r := range cfg.Replace {
		if r.Old == "" {
			return nil, errors.New("attack: a replacement needs a non-empty OLD")
		}
	}
	if strings.ContainsAny(cfg.Inject, "\r\n") {
		return nil, errors.New("attack: the injected message must be one line")
	}
	switch cfg.Scheme {
	case "aes-cbc", "aes-cbc-hmac":
		if len(cfg.Replace) > 0 {
			notes = append(notes, fmt.Sprintf("--replace makes no sense on %s: Mallory cannot read its records without the pre-shared key, so there is no text to rewrite; running in show mode for it", cfg.Scheme))
		}
		if cfg.Inject != "" {
			notes = append(notes, fmt.Sprintf("--inject on %s: Mallory cannot encrypt her text without the pre-shared key, so she injects a forged record of random bytes instead", cfg.Scheme))
		}
	case "mtls":
		if len(cfg.Replace) > 0 || cfg.Flip != nil || cfg.Replay > 0 || cfg.Drop > 0 || cfg.Inject != "" {
			notes = append(notes, "the actions make no sense on mtls: the room requires a client certificate from its own CA, which Mallory does not have, so she never gets a connection to tamper with; running in show mode")
		}
	case "tls":
		if len(cfg.Replace) > 0 || cfg.Flip != nil || cfg.Replay > 0 || cfg.Drop > 0 || cfg.Inject != "" {
			notes = append(notes, "on tls the actions work only on members who skip certificate verification (--insecure-skip-verify); a member that verifies refuses Mallory's certificate")
		}
	}
	return notes, nil
}
