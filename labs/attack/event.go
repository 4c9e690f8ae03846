package attack

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind names what happened in an Event.
type Kind string

// The kinds of event, in roughly the order a connection produces them.
const (
	// KindConnect: a member connected and the room was dialled.
	KindConnect Kind = "connect"
	// KindKey: Mallory learned the xor key.
	KindKey Kind = "key"
	// KindHello: an aes hello passed, untouched; it is public and gives
	// nothing without the pre-shared key.
	KindHello Kind = "hello"
	// KindIntercepted: a tls member accepted Mallory's certificate.
	KindIntercepted Kind = "intercepted"
	// KindRead: Mallory read a message.
	KindRead Kind = "read"
	// KindOpaque: a record passed that Mallory cannot read; only its size
	// is known.
	KindOpaque Kind = "opaque"
	// KindRewrote: Mallory rewrote a message's text.
	KindRewrote Kind = "rewrote"
	// KindFlipped: Mallory XORed a mask into a record.
	KindFlipped Kind = "flipped"
	// KindReplayed: Mallory sent a client record a second time.
	KindReplayed Kind = "replayed"
	// KindDropped: Mallory swallowed a client record.
	KindDropped Kind = "dropped"
	// KindInjected: Mallory sent a message of her own as the client.
	KindInjected Kind = "injected"
	// KindSkipped: an action could not apply to a record (too short).
	KindSkipped Kind = "skipped"
	// KindDetected: the receiver noticed the tampering and closed the
	// connection.
	KindDetected Kind = "detected"
	// KindBlocked: authentication kept Mallory out.
	KindBlocked Kind = "blocked"
	// KindMismatch: the room (or the member) does not speak the relay's
	// scheme.
	KindMismatch Kind = "mismatch"
	// KindError: a connection failed, such as the room being down; the
	// relay keeps listening.
	KindError Kind = "error"
	// KindClosed: one side closed and the relay closed the other.
	KindClosed Kind = "closed"
)

// An Event is one thing the relay saw or did, for an instructor to read
// aloud (String) or a script to parse (its JSON encoding).
type Event struct {
	Time time.Time `json:"time"`
	Kind Kind      `json:"kind"`
	// Conn numbers the member connections from 1.
	Conn int `json:"conn"`
	// From and To name the direction: the member's name once the room has
	// welcomed it ("client N" before), or "room".
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Record is the client record number (the member's name is 1; for aes
	// the key confirmation is 0), or 0 when it does not apply.
	Record int `json:"record,omitempty"`
	// Text is the message as delivered (after any rewrite), when Mallory
	// can read it.
	Text string `json:"text,omitempty"`
	// Old is the message before a rewrite or flip, when readable.
	Old string `json:"old,omitempty"`
	// Size is the record's size on the wire, in bytes.
	Size int `json:"size,omitempty"`
	// Detail says more, in one sentence.
	Detail string `json:"detail,omitempty"`
}

// String is the event as one plain line, such as
// `READ alice→room: "hello"`.
func (e Event) String() string {
	var b strings.Builder
	b.WriteString(strings.ToUpper(string(e.Kind)))
	dir := ""
	if e.From != "" || e.To != "" {
		dir = e.From + "→" + e.To
	}
	switch e.Kind {
	case KindDetected:
		fmt.Fprintf(&b, " by the %s: %s", e.To, e.Detail)
	case KindRead:
		fmt.Fprintf(&b, " %s: %s", dir, quote(e.Text))
		if e.Record > 0 {
			fmt.Fprintf(&b, " (record %d)", e.Record)
		}
	case KindRewrote:
		fmt.Fprintf(&b, " %s: %s → %s", dir, quote(e.Old), quote(e.Text))
	default:
		if dir != "" {
			b.WriteString(" " + dir)
		}
		if e.Record > 0 || e.Kind == KindOpaque {
			fmt.Fprintf(&b, " record %d", e.Record)
		}
		if e.Size > 0 {
			fmt.Fprintf(&b, " (%d bytes)", e.Size)
		}
		if e.Old != "" && e.Text != "" {
			fmt.Fprintf(&b, " %s → %s", quote(e.Old), quote(e.Text))
		} else if e.Text != "" {
			fmt.Fprintf(&b, " %s", quote(e.Text))
		}
		if e.Detail != "" {
			b.WriteString(": " + e.Detail)
		}
	}
	return b.String()
}

// quote shows text with Go quoting, so that control characters a member
// sent cannot drive the instructor's terminal.
func quote(s string) string { return strconv.Quote(s) }
