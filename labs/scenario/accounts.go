package scenario

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strings"
)

// passwords are a scenario room's accounts (Options.Passwords), held in
// memory: a lab's room is about what crosses the wire, not about storing
// passwords, which parley serve --auth does with argon2id hashes.
type passwords map[string]string

// Verify compares digests in constant time, so that neither the length nor
// the existence of an account shows in the time it takes.
func (p passwords) Verify(_ context.Context, name string, password []byte) (bool, error) {
	want, ok := p.lookup(name)
	a, b := sha256.Sum256([]byte(want)), sha256.Sum256(password)
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1 && ok, nil
}

func (p passwords) UserExists(_ context.Context, name string) (bool, error) {
	_, ok := p.lookup(name)
	return ok, nil
}

func (p passwords) lookup(name string) (string, bool) {
	for n, pw := range p {
		if strings.EqualFold(n, name) {
			return pw, true
		}
	}
	return "", false
}
