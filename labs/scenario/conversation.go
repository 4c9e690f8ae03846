package scenario

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"time"

	"github.com/parley-edu/parley/capture"
	"github.com/parley-edu/parley/schemes"
)

// DefaultSecret is the secret line of the standard conversation.
const DefaultSecret = "the vault code is 4-8-15-16-23-42"

// A Line is one scripted line: From says Text, and every other bot waits
// until it has received it.
type Line struct {
	From, Text string
}

// Script returns the standard conversation between alice and bob, with
// secret as alice's third line.
func Script(secret string) []Line {
	return []Line{
		{"alice", "hi bob, is anyone else here?"},
		{"bob", "just us. what's the code?"},
		{"alice", secret},
		{"bob", "got it, thanks"},
	}
}

// Play joins a bot for every speaker of lines that is not in bots yet, then
// says each line in turn and waits until every other bot has received it.
// It returns the bots by name.
func (s *Scenario) Play(ctx context.Context, bots map[string]*Bot, lines []Line) (map[string]*Bot, error) {
	if bots == nil {
		bots = map[string]*Bot{}
	}
	for _, l := range lines {
		if _, ok := bots[l.From]; ok {
			continue
		}
		b, err := s.Join(l.From)
		if err != nil {
			return bots, err
		}
		bots[l.From] = b
	}
	for _, l := range lines {
		if err := bots[l.From].Say(l.Text); err != nil {
			return bots, err
		}
		want := l.From + ": " + l.Text
		for name, b := range bots {
			if name == l.From {
				continue
			}
			if err := b.WaitLine(ctx, want); err != nil {
				return bots, err
			}
		}
	}
	return bots, nil
}

// ConversationOptions configure RunConversation.
type ConversationOptions struct {
	Scheme string
	// Home holds the credentials; empty means a temporary one.
	Home string
	// CapturePath is where the capture is written (required).
	CapturePath string
	// Secret is alice's secret line; empty means DefaultSecret.
	Secret  string
	Timeout time.Duration
}

// A ConversationResult is what crossed the wire when alice and bob had the
// standard conversation over one scheme, and what an eavesdropper made of
// it.
type ConversationResult struct {
	Scheme     string
	Properties schemes.Properties
	Secret     string
	// Capture is the pcapng file (TLS keys embedded); KeyLog the key log
	// beside it, or "" when the scheme has no TLS keys.
	Capture, KeyLog string

	// Handshake is alice's time from dialling the tap to the end of the
	// scheme's handshake.
	Handshake time.Duration
	// WireBytes is what alice's connection put on the wire to send the
	// secret line (for mtls the DATA block and the PASS answer), measured
	// below the scheme.
	WireBytes int64

	// EveReads reports whether the eavesdropper's view of the capture
	// (read with ReadAsEve: no key log, no pre-shared key) recovered the
	// secret. EveRecoveredBy says how (a capture.Recovered* value).
	EveReads       bool
	EveRecoveredBy string
	// EveRecord is the eavesdropper's event for the record that carried
	// the secret from alice, or nil if it could not be located.
	EveRecord *capture.Event
	// EveHandshake holds the eavesdropper's handshake events of alice's
	// connection.
	EveHandshake []capture.Event
	// Events is the whole eavesdropper's view.
	Events []capture.Event
}

// RunConversation starts a tapped scenario, plays Script(secret) between
// alice and bob, lets both quit, writes the capture and reads it back as
// the eavesdropper.
func RunConversation(ctx context.Context, o ConversationOptions) (*ConversationResult, error) {
	if o.CapturePath == "" {
		return nil, errors.New("scenario: RunConversation needs a CapturePath")
	}
	secret := o.Secret
	if secret == "" {
		secret = DefaultSecret
	}
	s, err := Start(ctx, Options{Scheme: o.Scheme, Home: o.Home, Tap: true, CapturePath: o.CapturePath, Timeout: o.Timeout})
	if err != nil {
		return nil, err
	}
	res := &ConversationResult{Scheme: o.Scheme, Properties: s.Properties(), Secret: secret, Capture: o.CapturePath}
	psk := s.Credentials().PSK
	script := Script(secret)
	bots, err := s.Play(ctx, nil, script[:2])
	if err == nil {
		alice := bots["alice"]
		res.Handshake = alice.Handshake
		before := alice.BytesSent()
		_, err = s.Play(ctx, bots, script[2:3])
		res.WireBytes = alice.BytesSent() - before
	}
	if err == nil {
		_, err = s.Play(ctx, bots, script[3:])
	}
	if err == nil {
		for _, name := range []string{"alice", "bob"} {
			if qerr := bots[name].Quit(ctx); qerr != nil && err == nil {
				err = qerr
			}
		}
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, err
	}
	if len(s.KeyLog()) > 0 {
		res.KeyLog = capture.KeyLogPath(o.CapturePath)
	}
	if err := res.analyse(psk); err != nil {
		return res, err
	}
	return res, nil
}

// analyse reads the capture twice: as Eve, for the verdict, and with the
// keys, only to locate the record that carried the secret so that Eve's
// view of that very record can be shown.
func (r *ConversationResult) analyse(psk []byte) error {
	eve, err := ReadAsEve(r.Capture)
	if err != nil {
		return err
	}
	r.Events = eve
	for _, e := range eve {
		if e.Type == capture.EventMessage && e.RecoveredBy != "" && e.Direction == capture.DirClient && strings.Contains(e.Plaintext, r.Secret) {
			r.EveReads, r.EveRecoveredBy = true, e.RecoveredBy
			break
		}
	}
	if !r.EveReads && Contains(eve, r.Secret) {
		// Recovered, though not from alice's side.
		r.EveReads = true
	}
	keyed, err := ReadWithKeys(r.Capture, psk)
	if err != nil {
		return err
	}
	target, ok := secretRecord(keyed, r.Secret)
	if !ok {
		return nil
	}
	for i, e := range eve {
		if e.StreamID != target.StreamID {
			continue
		}
		if e.Type == capture.EventHandshake {
			r.EveHandshake = append(r.EveHandshake, e)
		}
		if r.EveRecord == nil && e.Type == capture.EventMessage && e.Direction == target.Direction &&
			e.Time.Equal(target.Time) && e.WireBytes == target.WireBytes {
			r.EveRecord = &eve[i]
		}
	}
	return nil
}

// secretRecord finds, in a keyed read, the event of the record that carried
// the secret from the client: the first event of that record (later lines
// of the same record come with WireBytes 0).
func secretRecord(evs []capture.Event, secret string) (capture.Event, bool) {
	for i, e := range evs {
		if e.Type != capture.EventMessage || e.Direction != capture.DirClient || !strings.Contains(e.Plaintext, secret) {
			continue
		}
		for j := i; j >= 0; j-- {
			p := evs[j]
			if p.Type == capture.EventMessage && p.StreamID == e.StreamID && p.Direction == e.Direction && p.WireBytes > 0 {
				return p, true
			}
		}
	}
	return capture.Event{}, false
}

// CaptureName is the file name the demo gives a scheme's capture.
func CaptureName(dir, scheme string) string {
	return filepath.Join(dir, scheme+".pcapng")
}
