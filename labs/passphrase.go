package labs

import (
	"context"
	"strings"

	"github.com/parley-edu/parley/labs/scenario"
	"github.com/parley-edu/parley/schemes"
)

func init() {
	register(&Lab{
		ID:       "passphrase-crack",
		Title:    "Crack a weak passphrase from a recording, then read the room",
		Schemes:  []string{"aes-cbc-hmac"},
		Minutes:  30,
		Concepts: []string{"offline dictionary attack", "key stretching (Argon2id) raises the cost, not the entropy", "fixed salt"},
		FileOnly: true,
		answer:   func(seed []byte) string { return code(seed, "payroll") },
		check: func(seed []byte, got string) error {
			switch {
			case got == code(seed, "payroll"):
				return nil
			case got == passphraseWord(seed):
				return notYet("that is the passphrase: now read the capture with it and submit the payroll code you find")
			}
			return notYet("that is not the payroll code in your capture; find the passphrase first (a word of words.txt), then decrypt")
		},
		demonstrated: "you found the room's passphrase with an offline dictionary attack on a recording and decrypted it: " +
			"Argon2id makes each guess cost, but a one-word passphrase leaves only a few hundred guesses.",
		start: func(ctx context.Context, e *env) (*Session, error) {
			path := e.path("passphrase-crack.pcapng")
			psk := schemes.PassphraseKey(passphraseWord(e.seed))
			err := recordTalk(ctx, scenario.Options{Scheme: "aes-cbc-hmac", CapturePath: path, PSK: psk, Logger: e.log}, []say{
				chat("alice", "is this room safe? we chose an easy passphrase"),
				chat("bob", "it is encrypted with AES-256, nobody can read it"),
				private("alice", "bob", "then here is the payroll code: "+code(e.seed, "payroll")),
				chat("bob", "thanks"),
			})
			if err != nil {
				return nil, err
			}
			s, err := e.writeFiles([2]string{"words.txt", strings.Join(Words(), "\n") + "\n"})
			if err != nil {
				return nil, err
			}
			s.Files = append([]string{path}, s.Files...)
			return s, nil
		},
	})
}

// passphraseWord is the student's room passphrase: one word of Words.
func passphraseWord(seed []byte) string { return Words()[pick(seed, "passphrase", len(Words()))] }
