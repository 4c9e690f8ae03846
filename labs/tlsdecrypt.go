package labs

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"

	"github.com/parley-edu/parley/capture"
	"github.com/parley-edu/parley/labs/scenario"
	"github.com/parley-edu/parley/schemes"
)

func init() {
	register(&Lab{
		ID:       "tls-decrypt",
		Title:    "Decrypt a TLS 1.3 capture with its key log",
		Schemes:  []string{"tls"},
		Minutes:  20,
		Concepts: []string{"TLS 1.3 record protection", "NSS key log (SSLKEYLOGFILE)", "Wireshark TLS decryption"},
		FileOnly: true,
		answer:   func(seed []byte) string { return code(seed, "door") },
		demonstrated: "you decrypted TLS 1.3 application data with the session's key log: TLS hides the content from Eve, " +
			"but anyone holding the endpoint's secrets (a key log, a debugging proxy) reads it all.",
		start: func(ctx context.Context, e *env) (*Session, error) {
			path := e.path("tls-decrypt.pcapng")
			keys := capture.KeyLogPath(path)
			err := recordTalk(ctx, scenario.Options{Scheme: "tls", CapturePath: path, Logger: e.log,
				Configure: func(cfg *schemes.Config, _ bool) { cfg.TLSVersion = tls.VersionTLS13 }}, []say{
				chat("alice", "bob, did facilities change the lab door code again?"),
				chat("bob", "yes, this morning"),
				private("bob", "alice", "the new door code is "+code(e.seed, "door")),
				chat("alice", "thanks!"),
			})
			if err != nil {
				return nil, err
			}
			// The student gets the key log as a separate file, as from
			// SSLKEYLOGFILE, not embedded in the capture.
			data, err := os.ReadFile(path)
			if err == nil {
				data, err = scenario.StripSecrets(data)
			}
			if err == nil {
				err = os.WriteFile(path, data, 0o644)
			}
			if err != nil {
				return nil, fmt.Errorf("labs: cannot remove the keys from %s: %w", path, err)
			}
			if _, err := os.Stat(keys); err != nil {
				return nil, fmt.Errorf("labs: the key log was not written: %w", err)
			}
			return &Session{Files: []string{path, keys}}, nil
		},
	})
}
