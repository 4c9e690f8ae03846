package labs

import (
	"context"

	"github.com/parley-edu/parley/labs/scenario"
)

func init() {
	register(&Lab{
		ID:       "sniff-plain",
		Title:    "Read a private message off the wire",
		Schemes:  []string{"plain"},
		Minutes:  15,
		Concepts: []string{"no confidentiality", "private ≠ secret", "reading a pcap"},
		FileOnly: true,
		answer:   func(seed []byte) string { return code(seed, "vault") },
		demonstrated: "you read a private message from a recording of a plain room: without encryption, " +
			"anyone on the path reads everything, /msg or not.",
		start: func(ctx context.Context, e *env) (*Session, error) {
			path := e.path("sniff-plain.pcapng")
			err := recordTalk(ctx, scenario.Options{Scheme: "plain", CapturePath: path, Logger: e.log}, []say{
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
