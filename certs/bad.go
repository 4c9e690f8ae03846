package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// A BadKind is one way a certificate is deliberately broken for a lab.
type BadKind string

// The deliberately broken certificates. Each fails verification for its own
// reason, which the tls and mtls schemes report as a distinct
// schemes.CertificateError.
const (
	// BadExpired is signed by the lab CA and stopped being valid yesterday.
	BadExpired BadKind = "expired"
	// BadWrongHost is signed by the lab CA but names WrongHost only.
	BadWrongHost BadKind = "wrong-host"
	// BadSelfSigned is signed by its own key: nobody vouches for it.
	BadSelfSigned BadKind = "self-signed"
	// BadNoClientAuth is signed by the lab CA but allows server
	// authentication only, so an mtls room refuses it as a client
	// certificate.
	BadNoClientAuth BadKind = "no-client-auth"
	// BadRogueCA is signed by a second CA (rogue-ca.crt) that nobody
	// trusts.
	BadRogueCA BadKind = "rogue-ca"
)

// BadKinds lists every BadKind, in the order the labs introduce them.
var BadKinds = []BadKind{BadExpired, BadWrongHost, BadSelfSigned, BadNoClientAuth, BadRogueCA}

// WrongHost is the only name a BadWrongHost certificate is valid for.
const WrongHost = "wrong-host.example"

// ErrUnknownKind reports a BadKind that does not exist.
var ErrUnknownKind = errors.New("certs: unknown kind of bad certificate")

// ParseBadKind returns the BadKind named s.
func ParseBadKind(s string) (BadKind, error) {
	for _, k := range BadKinds {
		if string(k) == s {
			return k, nil
		}
	}
	names := make([]string, len(BadKinds))
	for i, k := range BadKinds {
		names[i] = string(k)
	}
	return "", fmt.Errorf("%w %q (known: %s)", ErrUnknownKind, s, strings.Join(names, ", "))
}

// Explain says in one sentence why a certificate of kind k is rejected.
func (k BadKind) Explain() string {
	switch k {
	case BadExpired:
		return "it expired yesterday, so every client and server rejects it"
	case BadWrongHost:
		return "it is valid only for " + WrongHost + ", so a client that dials localhost rejects it"
	case BadSelfSigned:
		return "it is signed by its own key, so no trusted authority vouches for it"
	case BadNoClientAuth:
		return "it lacks the client-authentication usage, so an mtls room refuses it as a client certificate"
	case BadRogueCA:
		return "it is signed by rogue-ca.crt, an authority nobody trusts, as a man-in-the-middle's would be"
	}
	return "unknown kind"
}

// Bad writes NAME.crt and NAME.key to dir: a certificate with subject
// CN=name, broken as kind says. Except for BadWrongHost it covers hosts
// (DefaultHosts when empty) and, except for BadNoClientAuth, allows both
// server and client authentication, so that it can stand in on either side.
// BadRogueCA also creates (or reuses) rogue-ca.crt and rogue-ca.key.
func Bad(dir string, kind BadKind, name string, hosts []string, o Options) ([]File, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if _, err := ParseBadKind(string(kind)); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: failed to create %s: %w", dir, err)
	}
	if len(hosts) == 0 {
		hosts = DefaultHosts
	}
	if kind == BadWrongHost {
		hosts = []string{WrongHost}
	}
	tmpl, err := leafTemplate(name, hosts, o)
	if err != nil {
		return nil, err
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}

	var (
		signer *CA
		extra  []File
	)
	switch kind {
	case BadExpired:
		now := o.now()
		tmpl.NotBefore = now.AddDate(0, 0, -30)
		tmpl.NotAfter = now.AddDate(0, 0, -1).Truncate(time.Second)
		signer, err = LoadCA(dir)
	case BadWrongHost:
		signer, err = LoadCA(dir)
	case BadNoClientAuth:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		signer, err = LoadCA(dir)
	case BadSelfSigned:
		// issue self-signs when signer is nil.
	case BadRogueCA:
		signer, err = loadCA(dir, RogueCACertFile, RogueCAKeyFile)
		if errors.Is(err, ErrNoCA) {
			signer, err = newCA(dir, RogueCACertFile, RogueCAKeyFile, "parley ROGUE CA (trusted by nobody)", o)
		}
		if err == nil {
			extra = []File{
				{Path: signer.CertPath, Mode: CertMode, What: "rogue CA certificate", Expires: signer.Cert.NotAfter},
				{Path: signer.KeyPath, Mode: CAKeyMode, What: "rogue CA private key"},
			}
		}
	}
	if err != nil {
		return nil, err
	}
	files, err := issue(dir, name, tmpl, signer, o)
	if err != nil {
		return nil, err
	}
	return append(extra, files...), nil
}
