package labs

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/parley-edu/parley/labs/internal/sha256ext"
)

// The length-extension lab: a naive MAC, sha256(key ‖ message), as the
// original HELLO/270 SIG protocol family used, lets anyone who sees one
// (message, tag) pair compute the tag of message ‖ padding ‖ anything.

// LengthExtSuffix is what the forged message must end with.
const LengthExtSuffix = "&to=mallory"

// lengthExtKeyLen is the secret key's length in bytes, which the handout
// tells the student.
const lengthExtKeyLen = 16

func init() {
	register(&Lab{
		ID:       "length-extension",
		Title:    "Forge a sha256(key ‖ message) tag without the key",
		Schemes:  []string{"mtls"},
		Minutes:  40,
		Concepts: []string{"Merkle–Damgård length extension", "naive keyed hash vs HMAC"},
		FileOnly: true,
		answer:   lengthExtAnswer,
		check:    lengthExtCheck,
		demonstrated: "you computed a valid sha256(key ‖ message) tag for a message you chose, without the key: " +
			"a length extension (CryptoPals challenge 29). HMAC (RFC 2104), which parley's mtls signatures use, is immune to it.",
		start: func(_ context.Context, e *env) (*Session, error) {
			key, msg := lengthExtKey(e.seed), lengthExtMessage(e.seed)
			tag := sha256.Sum256(append(append([]byte(nil), key...), msg...))
			m := hmac.New(sha256.New, key)
			m.Write(msg)
			return e.writeFiles(
				[2]string{"message.txt", string(msg)},
				[2]string{"tag.txt", hex.EncodeToString(tag[:]) + "\n"},
				[2]string{"hmac-tag.txt", hex.EncodeToString(m.Sum(nil)) + "\n"},
			)
		},
	})
}

func lengthExtKey(seed []byte) []byte { return derive(seed, "mac key")[:lengthExtKeyLen] }

// lengthExtMessage is the bank's order that the student gets with its tag.
func lengthExtMessage(seed []byte) []byte {
	return fmt.Appendf(nil, "from=bank&amount=%d&ref=%s&to=alice", 100+pick(seed, "amount", 900), hex.EncodeToString(derive(seed, "ref")[:4]))
}

// lengthExtAnswer is the forged pair as MESSAGEHEX:TAGHEX, computed the
// way the student must: from the message and tag only.
func lengthExtAnswer(seed []byte) string {
	msg := lengthExtMessage(seed)
	key := lengthExtKey(seed)
	tag := sha256.Sum256(append(append([]byte(nil), key...), msg...))
	n := uint64(len(key) + len(msg))
	d := sha256ext.Resume(tag, n)
	d.Write([]byte(LengthExtSuffix))
	forged := append(append(append([]byte(nil), msg...), sha256ext.Padding(n)...), LengthExtSuffix...)
	sum := d.Sum()
	return hex.EncodeToString(forged) + ":" + hex.EncodeToString(sum[:])
}

func lengthExtCheck(seed []byte, got string) error {
	mh, th, ok := strings.Cut(got, ":")
	msg, err1 := hex.DecodeString(strings.TrimSpace(mh))
	tag, err2 := hex.DecodeString(strings.TrimSpace(th))
	if !ok || err1 != nil || err2 != nil || len(tag) != sha256.Size {
		return notYet("give the forged message and its tag as MESSAGEHEX:TAGHEX (the message's bytes in hex, a colon, the 64-hex-digit tag)")
	}
	orig := lengthExtMessage(seed)
	switch {
	case !bytes.HasPrefix(msg, orig):
		return notYet("the forged message must begin with the bytes of your message.txt exactly (is this your own student id's message?)")
	case !bytes.HasSuffix(msg, []byte(LengthExtSuffix)):
		return notYet("the forged message must end with %q, so that the bank pays mallory", LengthExtSuffix)
	case len(msg) == len(orig)+len(LengthExtSuffix):
		return notYet("the tag cannot be extended without the padding: the forged message is message ‖ SHA-256 padding of (key ‖ message) ‖ %q", LengthExtSuffix)
	}
	want := sha256.Sum256(append(append([]byte(nil), lengthExtKey(seed)...), msg...))
	if !hmac.Equal(tag, want[:]) {
		return notYet("that tag is not sha256(key ‖ your forged message): check that the padding counts the %d-byte key plus the message, and that the bit length at its end is big-endian", lengthExtKeyLen)
	}
	return nil
}
