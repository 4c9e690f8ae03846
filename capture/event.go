package capture

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Event types.
const (
	EventStream    = "stream"    // a TCP stream was first seen
	EventHandshake = "handshake" // what a scheme's handshake revealed
	EventMessage   = "message"   // one message (or record) on the wire
	EventNote      = "note"      // anything else worth telling: gaps, errors, hints

	// EventCredential is a login read off the wire: a room with logins
	// asked for a password, and the client's answer could be read.
	EventCredential = "credential"
)

// Directions: who sent the bytes of an event.
const (
	DirClient = "client"
	DirServer = "server"
)

// How a message's plaintext was recovered (Event.RecoveredBy).
const (
	RecoveredCleartext     = "cleartext"
	RecoveredXORKeyByte    = "xor-key-byte"
	RecoveredXORBruteForce = "xor-bruteforce"
	RecoveredPSK           = "psk"
	RecoveredTLSKeyLog     = "tls-keylog"
)

// Certificate is what a certificate on the wire says about itself.
type Certificate struct {
	Subject string `json:"subject"`
	Issuer  string `json:"issuer"`
}

// Event is one thing the eavesdropper saw. Events of one stream are emitted
// in stream order; streams interleave in the order their packets appear in
// the capture.
type Event struct {
	Type      string    `json:"type"`
	Stream    string    `json:"stream"`    // "clientip:port-serverip:port"
	StreamID  int       `json:"stream_id"` // 1, 2, ... in order of first appearance
	Direction string    `json:"direction,omitempty"`
	Scheme    string    `json:"scheme,omitempty"`
	Time      time.Time `json:"time"`

	// Text is a one-line human description: the note, what the handshake
	// showed, or what a message's bytes reveal when no plaintext is known.
	Text string `json:"text,omitempty"`

	// Message fields.
	Record      string `json:"record,omitempty"` // record kind, e.g. "application_data"
	WireBytes   int    `json:"wire_bytes,omitempty"`
	Plaintext   string `json:"plaintext,omitempty"`
	RecoveredBy string `json:"recovered_by,omitempty"`

	// aes-cbc-hmac / aes-cbc record fields.
	IV              string `json:"iv,omitempty"` // hex
	CiphertextBytes int    `json:"ciphertext_bytes,omitempty"`
	TagBytes        int    `json:"tag_bytes,omitempty"`
	PlaintextSize   string `json:"plaintext_size,omitempty"` // what the sizes reveal, e.g. "16-31 bytes"

	// Handshake fields: what was seen.
	TLSVersion      string        `json:"tls_version,omitempty"`
	OfferedVersions []string      `json:"offered_versions,omitempty"`
	CipherSuite     string        `json:"cipher_suite,omitempty"`
	OfferedSuites   []string      `json:"offered_cipher_suites,omitempty"`
	SNI             string        `json:"sni,omitempty"`
	ALPN            []string      `json:"alpn,omitempty"`
	KeyShareGroup   string        `json:"key_share_group,omitempty"`
	Certificates    []Certificate `json:"certificates,omitempty"`
	XORKey          *int          `json:"xor_key,omitempty"`
	ClientNonce     string        `json:"client_nonce,omitempty"` // hex
	ServerNonce     string        `json:"server_nonce,omitempty"` // hex

	// Credential fields.
	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty"`

	// Wire holds the message's bytes on the wire, for --hex.
	Wire []byte `json:"-"`
}

// WriteText writes e as the eavesdropper's view: one line per event (plus a
// hex dump of the wire bytes when hex is true). Plaintext is quoted so that
// control characters from the capture never reach the terminal raw.
func WriteText(w io.Writer, e Event, hex bool) error {
	var b strings.Builder
	switch e.Type {
	case EventStream:
		fmt.Fprintf(&b, "=== #%d %s  %s", e.StreamID, e.Stream, e.Scheme)
		if e.Text != "" {
			fmt.Fprintf(&b, "  (%s)", e.Text)
		}
	default:
		fmt.Fprintf(&b, "%s #%d %-6s %-12s ", e.Time.Local().Format("15:04:05.000000"), e.StreamID, arrow(e.Direction), e.Scheme)
		switch e.Type {
		case EventHandshake:
			b.WriteString("handshake: ")
			b.WriteString(e.Text)
		case EventNote:
			b.WriteString("note: ")
			b.WriteString(e.Text)
		case EventCredential:
			fmt.Fprintf(&b, "CREDENTIAL FOUND: user %s password %s [%s]", quote(e.User), quote(e.Password), e.RecoveredBy)
		case EventMessage:
			fmt.Fprintf(&b, "%5d B ", e.WireBytes)
			if e.Record != "" {
				b.WriteString(e.Record)
				b.WriteByte(' ')
			}
			if e.Text != "" {
				b.WriteString(e.Text)
				b.WriteByte(' ')
			}
			if e.RecoveredBy != "" {
				fmt.Fprintf(&b, "[%s] %s", e.RecoveredBy, quote(e.Plaintext))
			}
		}
	}
	line := strings.TrimRight(b.String(), " ")
	b.Reset()
	b.WriteString(line)
	b.WriteByte('\n')
	if hex && len(e.Wire) > 0 {
		b.WriteString(indent(hexDump(e.Wire), "    "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes e as one JSON object on one line. With hex, the wire
// bytes are added as "wire_hex".
func WriteJSON(w io.Writer, e Event, withHex bool) error {
	var v any = e
	if withHex && len(e.Wire) > 0 {
		v = struct {
			Event
			WireHex string `json:"wire_hex"`
		}{e, hex.EncodeToString(e.Wire)}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("capture: failed to encode event: %w", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

func arrow(dir string) string {
	switch dir {
	case DirClient:
		return "C->S"
	case DirServer:
		return "S->C"
	}
	return ""
}

// quote quotes s like strconv.Quote but keeps printable non-ASCII text.
func quote(s string) string { return fmt.Sprintf("%q", s) }

func hexDump(b []byte) string {
	const max = 4096
	if len(b) > max {
		return hex.Dump(b[:max]) + fmt.Sprintf("... (%d more bytes)\n", len(b)-max)
	}
	return hex.Dump(b)
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(s, "\n")
	var b strings.Builder
	for _, l := range lines {
		if l == "" {
			continue
		}
		b.WriteString(prefix)
		b.WriteString(l)
	}
	return b.String()
}
