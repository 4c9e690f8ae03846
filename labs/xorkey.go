package labs

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/parley-edu/parley/labs/scenario"
	"github.com/parley-edu/parley/schemes"
)

func init() {
	register(&Lab{
		ID:       "xor-key",
		Title:    "Break the one-byte XOR: the key on the wire, then brute force",
		Schemes:  []string{"xor"},
		Minutes:  30,
		Concepts: []string{"obscurity is not secrecy", "key sent in the clear", "256-key brute force"},
		FileOnly: true,
		answer:   func(seed []byte) string { return code(seed, "code") },
		check: func(seed []byte, got string) error {
			first, second := xorHalves(seed)
			switch want := code(seed, "code"); {
			case got == want:
				return nil
			case got == first || strings.HasPrefix(got, first+"-"):
				return notYet("that is the first half, from the capture with the key byte; the digits are in the late capture (xor-late.pcapng), whose key is different")
			case got == second:
				return notYet("those are the digits from the late capture; the code begins with the two words from xor-handshake.pcapng")
			}
			return notYet("that is not your code: it is the two words from xor-handshake.pcapng and the digits from xor-late.pcapng, as word-word-1234")
		},
		demonstrated: "you read the xor key from the server's first byte, then recovered another key by trying all 256: " +
			"a key sent in the clear is no key, and a one-byte key space is no protection.",
		start: func(ctx context.Context, e *env) (*Session, error) {
			k1, k2 := xorKeys(e.seed)
			first, second := xorHalves(e.seed)
			full := e.path("xor-handshake.pcapng")
			err := recordTalk(ctx, scenario.Options{Scheme: "xor", CapturePath: full, Logger: e.log, Configure: fixXOR(k1)}, []say{
				chat("alice", "new rule: the safe code is split in two, one half per day"),
				chat("bob", "ok, what is today's half?"),
				private("alice", "bob", "first half of the code: "+first),
				chat("bob", "got it, thanks"),
			})
			if err != nil {
				return nil, err
			}
			// The second day: a new server run (so a new key), recorded
			// from after everyone had joined.
			late := e.path("xor-late.pcapng")
			whole := e.path(".xor-late-whole.pcapng")
			defer os.Remove(whole)
			sc, err := scenario.Start(ctx, scenario.Options{Scheme: "xor", Tap: true, CapturePath: whole, Logger: e.log, Configure: fixXOR(k2)})
			if err != nil {
				return nil, err
			}
			c := &cast{}
			err = play(ctx, sc, c, []say{chat("alice", "good morning bob"), chat("bob", "morning")})
			var cutAt time.Time
			if err == nil {
				cutAt = time.Now()
				err = play(ctx, sc, c, []say{
					chat("bob", "the second half of the code, please? the auditors are here at noon"),
					chat("alice", "sure, one moment, I have to find the envelope first"),
					private("alice", "bob", "second half of the code: "+second),
					chat("bob", "thanks, that opens it. see you at lunch"),
					chat("alice", "see you, and remember to lock it again afterwards"),
				})
			}
			if cerr := sc.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, err
			}
			if err := cutCapture(whole, late, cutAt); err != nil {
				return nil, err
			}
			return &Session{Files: []string{full, late}}, nil
		},
	})
}

// xorKeys returns the two server runs' keys, which differ.
func xorKeys(seed []byte) (byte, byte) {
	k1, k2 := derive(seed, "key1")[0], derive(seed, "key2")[0]
	if k1 == k2 {
		k2 ^= 0x5a
	}
	return k1, k2
}

// xorHalves splits the code into its two words and its digits.
func xorHalves(seed []byte) (string, string) {
	c := code(seed, "code")
	i := strings.LastIndexByte(c, '-')
	return c[:i], c[i+1:]
}

// fixXOR sets the server's xor key.
func fixXOR(key byte) func(*schemes.Config, bool) {
	return func(cfg *schemes.Config, server bool) {
		if server {
			cfg.XORKey, cfg.XORKeySet = key, true
		}
	}
}
