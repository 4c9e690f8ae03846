// Package schemes holds parley's transport schemes: the ways one chat-room
// connection can be protected, from not at all (plain) to mutual TLS.
//
// Every scheme turns a net.Conn into a Conn that carries whole room
// messages, so the room engine never knows which scheme it runs over:
//
//   - plain frames messages by newline; the wire is the room's lines as they are.
//   - xor (INSECURE) sends its one-byte key in the clear on connect, then
//     frames each message as a length-prefixed record XORed with the key.
//   - aes-cbc-hmac runs a hello exchange, derives per-connection keys from a
//     pre-shared key with HKDF, and frames each message as an
//     encrypt-then-MAC AES-256-CBC + HMAC-SHA256 record with an implicit
//     sequence number.
//   - aes-cbc (INSECURE, teaching variant) is aes-cbc-hmac without the tag,
//     so that CBC bit-flipping and, when enabled, the padding oracle work.
//   - tls wraps the connection in crypto/tls (TLS 1.3 by default) and frames
//     by newline inside it.
//   - mtls requires a verified client certificate and runs the HMAC signature
//     protocol (HELLO / DATA / 270 SIG / PASS / 280 deliveries) inside TLS;
//     its Conn turns each accepted DATA block into one message and each
//     outgoing message into one signed 280 line, and reports the
//     certificate's name through Conn.Peer.
//
// Byte-exact formats are in PROTOCOL.md beside this file.
//
// A scheme describes its own security properties and weaknesses as data
// (Properties), so that `parley schemes`, the demo and the labs print the
// same truth.
package schemes

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"time"
)

// A Scheme protects one connection. Server and Client run the scheme's
// handshake on c and return a Conn that carries whole room messages.
//
// Server and Client do not set deadlines: the caller bounds the handshake
// with c.SetDeadline and clears it afterwards. On error the caller still owns
// c and must close it. A Scheme is safe for concurrent use by many
// connections.
type Scheme interface {
	Name() string
	Properties() Properties
	Server(c net.Conn) (Conn, error)
	Client(c net.Conn) (Conn, error)
}

// A Conn carries whole room messages over one connection.
//
// ReadMessage and WriteLines may be called concurrently with each other (one
// reader goroutine and one writer goroutine), but neither may be called
// concurrently with itself. After a fatal error every later call of the same
// method returns that error again (sticky errors, as in crypto/tls).
type Conn interface {
	// ReadMessage returns the next message, without its line ending. The
	// returned slice is only valid until the next call of ReadMessage.
	//
	// A message longer than the Conn's limit returns an error that wraps
	// ErrMessageTooLong; for line-framed schemes the rest of that line is
	// discarded and the Conn stays usable, so the caller may continue.
	// Every other error is fatal for the Conn.
	ReadMessage() ([]byte, error)

	// WriteLines sends every message in b, which holds one or more messages
	// each terminated by '\n', in order, in as few network writes as the
	// scheme allows. Messages must not contain '\n' themselves.
	WriteLines(b []byte) error

	// Close closes the underlying connection.
	Close() error

	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	LocalAddr() net.Addr
	RemoteAddr() net.Addr

	// Peer reports what the handshake established about the other side.
	Peer() Peer
}

// Peer is what a handshake established about the other side of a Conn.
type Peer struct {
	// Identity is the peer's verified name (the client certificate's common
	// name in mtls), or empty when the scheme does not authenticate the peer.
	Identity string
	// Detail is a short human description of the session, such as
	// "TLS 1.3, TLS_AES_128_GCM_SHA256", or empty.
	Detail string
}

// Properties is what a scheme guarantees and what it leaks, as data.
type Properties struct {
	Name    string `json:"name"`
	Summary string `json:"summary"`

	// Insecure marks the schemes that are weak on purpose (plain, xor,
	// aes-cbc). Warning is one plain sentence saying why; rooms and clients
	// print it every time such a scheme is used.
	Insecure bool   `json:"insecure"`
	Warning  string `json:"warning,omitempty"`

	Confidentiality  bool `json:"confidentiality"`
	Integrity        bool `json:"integrity"`
	ServerAuth       bool `json:"server_auth"`
	ClientAuth       bool `json:"client_auth"`
	ReplayProtection bool `json:"replay_protection"`
	ForwardSecrecy   bool `json:"forward_secrecy"`

	// Leaks lists what an eavesdropper still learns.
	Leaks []string `json:"leaks"`
	// Weaknesses lists what an attacker can do.
	Weaknesses []string `json:"weaknesses"`
	// Teaches is the lesson the scheme exists for.
	Teaches string `json:"teaches"`
}

// DefaultMaxMessage is the largest message, in bytes, that a Conn accepts
// unless Config.MaxMessage says otherwise.
const DefaultMaxMessage = 64 << 10

// Config carries what a scheme needs beyond the connection. Each scheme uses
// the fields it documents and ignores the rest; New reports a missing field
// that the chosen scheme requires.
type Config struct {
	// MaxMessage bounds one message; 0 means DefaultMaxMessage.
	MaxMessage int

	// XORKey fixes the xor scheme's key (0-255) when XORKeySet is true;
	// otherwise the server draws one from crypto/rand per run.
	XORKey    byte
	XORKeySet bool

	// PSK is the 32-byte pre-shared key of aes-cbc-hmac and aes-cbc.
	PSK []byte
	// PaddingOracle makes an aes-cbc server report bad padding differently
	// from other errors. INSECURE: only the padding-oracle lab sets it.
	PaddingOracle bool

	// TLSVersion is tls.VersionTLS13 (the default when zero) or
	// tls.VersionTLS12.
	TLSVersion uint16
	// Certificates is the server's certificate, or the client's in mtls.
	Certificates []tls.Certificate
	// RootCAs is the CA a client trusts; in mtls it is also the CA a
	// server requires client certificates to chain to.
	RootCAs *x509.CertPool
	// ServerName is the host name or IP a client verifies the server's
	// certificate against.
	ServerName string
	// InsecureSkipVerify disables the client's verification of the server.
	// INSECURE: it reproduces the original projects' mistake.
	InsecureSkipVerify bool
	// KeyLog receives TLS secrets in NSS key log format, for Wireshark.
	KeyLog io.Writer

	// SigningSecret is the room's mtls signing secret (server side); the
	// per-user key is derived from it and the verified name.
	SigningSecret []byte
	// SigKey is the user's mtls signing key K_user (client side).
	SigKey []byte
}

func (c Config) maxMessage() int {
	if c.MaxMessage <= 0 {
		return DefaultMaxMessage
	}
	return c.MaxMessage
}

// Errors that callers, tests and labs check with errors.Is.
var (
	// ErrMessageTooLong reports a message over the Conn's limit.
	ErrMessageTooLong = errors.New("schemes: message too long")
	// ErrBadRecordMAC is the single error of aes-cbc-hmac for every record
	// that fails authentication, whatever the cause.
	ErrBadRecordMAC = errors.New("schemes: bad record MAC")
	// ErrWrongKey reports that the first record from the peer failed
	// authentication: most likely the peer uses a different pre-shared key.
	ErrWrongKey = errors.New("schemes: the peer uses a different pre-shared key")
	// ErrNotParley reports a peer that does not speak the expected scheme.
	ErrNotParley = errors.New("schemes: the peer does not speak this scheme")
)

// UnknownSchemeError reports a scheme name that is not registered.
type UnknownSchemeError struct{ Name string }

func (e *UnknownSchemeError) Error() string {
	return fmt.Sprintf("schemes: unknown scheme %q (known: %s)", e.Name, strings.Join(Names(), ", "))
}

// MismatchError reports a peer that speaks a different scheme from ours, as
// far as its first bytes tell.
type MismatchError struct {
	Want string // our scheme
	Got  string // what the peer seems to speak, or "" when unrecognised
}

func (e *MismatchError) Error() string {
	if e.Got == "" {
		return fmt.Sprintf("schemes: the peer does not speak %s", e.Want)
	}
	return fmt.Sprintf("schemes: the peer speaks %s, not %s", e.Got, e.Want)
}

func (e *MismatchError) Unwrap() error { return ErrNotParley }

type entry struct {
	props Properties
	new   func(Config) (Scheme, error)
}

// registry is written only by init functions, so reading it needs no lock.
var registry = map[string]entry{}

// order is the order in which schemes are listed: weakest first.
var order = map[string]int{"plain": 0, "xor": 1, "aes-cbc": 2, "aes-cbc-hmac": 3, "tls": 4, "mtls": 5}

func register(p Properties, f func(Config) (Scheme, error)) {
	if _, dup := registry[p.Name]; dup {
		panic("schemes: scheme registered twice: " + p.Name)
	}
	registry[p.Name] = entry{props: p, new: f}
}

// Names lists the registered schemes, weakest first.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		oi, iok := order[names[i]]
		oj, jok := order[names[j]]
		if iok != jok {
			return iok
		}
		if oi != oj {
			return oi < oj
		}
		return names[i] < names[j]
	})
	return names
}

// Describe returns the properties of the named scheme.
func Describe(name string) (Properties, error) {
	e, ok := registry[name]
	if !ok {
		return Properties{}, &UnknownSchemeError{Name: name}
	}
	return e.props, nil
}

// All returns the properties of every registered scheme, weakest first.
func All() []Properties {
	var ps []Properties
	for _, n := range Names() {
		ps = append(ps, registry[n].props)
	}
	return ps
}

// New returns the named scheme configured by cfg.
func New(name string, cfg Config) (Scheme, error) {
	e, ok := registry[name]
	if !ok {
		return nil, &UnknownSchemeError{Name: name}
	}
	return e.new(cfg)
}
