package labs

import (
	"context"
	"strings"

	"github.com/parley-edu/parley/labs/scenario"
)

func init() {
	register(&Lab{
		ID:       "sniff-plain",
		Title:    "Read a private message and a password off the wire",
		Schemes:  []string{"plain"},
		Minutes:  20,
		Concepts: []string{"no confidentiality", "private ≠ secret", "passwords in the clear", "reading a pcap"},
		FileOnly: true,
		answer:   func(seed []byte) string { return code(seed, "vault") + " " + sniffPassword(seed) },
		check: func(seed []byte, got string) error {
			vault, password := code(seed, "vault"), sniffPassword(seed)
			fields := strings.Fields(got)
			switch {
			case got == vault+" "+password:
				return nil
			case len(fields) == 1 && fields[0] == vault:
				return notYet("that is the vault code; now add alice's password, read from her login (task 4), as \"CODE PASSWORD\"")
			case len(fields) == 1 && fields[0] == password:
				return notYet("that is alice's password; give the vault code first, then the password, as \"CODE PASSWORD\"")
			case len(fields) == 2 && fields[0] == vault:
				return notYet("the vault code is right, but that is not alice's password: look for the line she sent right after the server asked for it")
			case len(fields) == 2 && fields[1] == password:
				return notYet("alice's password is right, but that is not the vault code in your capture")
			}
			return notYet("that is not it: give the vault code from alice's private message and alice's password, as \"CODE PASSWORD\"")
		},
		demonstrated: "you read a private message and a password from a recording of a plain room: without encryption, " +
			"anyone on the path reads everything, /msg or login, and can log in as alice.",
		start: func(ctx context.Context, e *env) (*Session, error) {
			path := e.path("sniff-plain.pcapng")
			opts := scenario.Options{Scheme: "plain", CapturePath: path, Logger: e.log, Passwords: map[string]string{
				"alice": sniffPassword(e.seed),
				"bob":   code(e.seed, "bob-password"),
				"carol": code(e.seed, "carol-password"),
			}}
			err := recordTalk(ctx, opts, []say{
				chat("alice", "morning all, standup in five?"),
				chat("bob", "yes, joining now"),
				chat("carol", "can someone send me the vault code?"),
				private("alice", "bob", "don't tell carol: the vault code is "+code(e.seed, "vault")),
				chat("bob", "carol, ask the manager"),
			})
			if err != nil {
				return nil, err
			}
			return &Session{Files: []string{path}}, nil
		},
	})
}

// sniffPassword is alice's password in the sniff-plain room.
func sniffPassword(seed []byte) string { return code(seed, "alice-password") }
