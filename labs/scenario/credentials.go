package scenario

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/parley-edu/parley/certs"
	"github.com/parley-edu/parley/schemes"
)

// Credentials are what a scenario's room and clients need: the pre-shared
// key of the record schemes, and for tls and mtls the lab CA, the server's
// certificate and the room signing secret, all in CertDir.
type Credentials struct {
	// Home is the parley home; CertDir is Home/certs.
	Home, CertDir string
	// PSK is the aes-cbc-hmac / aes-cbc pre-shared key (nil otherwise).
	PSK []byte

	// The TLS schemes' credentials (zero otherwise).
	RootCAs       *x509.CertPool
	Server        tls.Certificate
	SigningSecret []byte

	mu      sync.Mutex
	clients map[string]clientCreds // by name, for mtls
}

type clientCreds struct {
	cert   tls.Certificate
	sigKey []byte
}

// setupMu serialises credential set-up between scenarios of one process, so
// that two scenarios sharing a home never issue into it at once.
var setupMu sync.Mutex

func needsTLS(scheme string) bool { return scheme == "tls" || scheme == "mtls" }
func needsPSK(scheme string) bool { return scheme == "aes-cbc-hmac" || scheme == "aes-cbc" }

func newCredentials(home, scheme string, psk []byte) (*Credentials, error) {
	c := &Credentials{Home: home, CertDir: filepath.Join(home, "certs"), clients: map[string]clientCreds{}}
	if needsPSK(scheme) {
		if psk == nil {
			var err error
			if psk, err = randomPSK(); err != nil {
				return nil, err
			}
		}
		if len(psk) != schemes.PSKLen {
			return nil, fmt.Errorf("scenario: the pre-shared key has %d bytes, want %d", len(psk), schemes.PSKLen)
		}
		c.PSK = psk
	}
	if !needsTLS(scheme) {
		return c, nil
	}
	setupMu.Lock()
	defer setupMu.Unlock()
	if _, err := certs.Init(c.CertDir, certs.Options{}); err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	var err error
	if c.RootCAs, err = certs.CAPool(c.CertDir); err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	if c.SigningSecret, err = certs.ReadSigningSecret(c.CertDir); err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	certPath := filepath.Join(c.CertDir, certs.ServerCertFile)
	keyPath := filepath.Join(c.CertDir, certs.ServerKeyFile)
	c.Server, err = loadLeaf(certPath, keyPath, c.RootCAs, x509.ExtKeyUsageServerAuth, ServerName, "127.0.0.1")
	if err != nil {
		if _, err := certs.IssueServer(c.CertDir, nil, certs.Options{}); err != nil {
			return nil, fmt.Errorf("scenario: %w", err)
		}
		c.Server, err = loadLeaf(certPath, keyPath, c.RootCAs, x509.ExtKeyUsageServerAuth, ServerName, "127.0.0.1")
		if err != nil {
			return nil, fmt.Errorf("scenario: the server certificate just issued does not work: %w", err)
		}
	}
	return c, nil
}

// loadLeaf loads a certificate and key and checks that the certificate
// chains to roots for usage, is valid now and covers every host given.
func loadLeaf(certPath, keyPath string, roots *x509.CertPool, usage x509.ExtKeyUsage, hosts ...string) (tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return tls.Certificate{}, err
		}
	}
	// Reuse only what will still be valid for the whole scenario.
	opts := x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}, CurrentTime: time.Now().Add(time.Hour)}
	if _, err := leaf.Verify(opts); err != nil {
		return tls.Certificate{}, err
	}
	for _, h := range hosts {
		if err := leaf.VerifyHostname(h); err != nil {
			return tls.Certificate{}, err
		}
	}
	return pair, nil
}

// Client returns name's mtls client certificate and signing key, reusing
// HOME/certs/NAME.crt, .key and .sigkey when they are valid and issuing
// them otherwise.
func (c *Credentials) Client(name string) (tls.Certificate, []byte, error) {
	c.mu.Lock()
	cc, ok := c.clients[name]
	c.mu.Unlock()
	if ok {
		return cc.cert, cc.sigKey, nil
	}
	if c.RootCAs == nil {
		return tls.Certificate{}, nil, errors.New("scenario: this scenario has no lab CA (only tls and mtls do)")
	}
	setupMu.Lock()
	defer setupMu.Unlock()
	cc, err := c.loadClient(name)
	if err != nil {
		if _, err := certs.IssueClient(c.CertDir, name, certs.Options{}); err != nil {
			return tls.Certificate{}, nil, fmt.Errorf("scenario: %w", err)
		}
		if cc, err = c.loadClient(name); err != nil {
			return tls.Certificate{}, nil, fmt.Errorf("scenario: the client certificate just issued for %s does not work: %w", name, err)
		}
	}
	c.mu.Lock()
	c.clients[name] = cc
	c.mu.Unlock()
	return cc.cert, cc.sigKey, nil
}

func (c *Credentials) loadClient(name string) (clientCreds, error) {
	base := filepath.Join(c.CertDir, name)
	cert, err := loadLeaf(base+".crt", base+".key", c.RootCAs, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return clientCreds{}, err
	}
	if cert.Leaf != nil && cert.Leaf.Subject.CommonName != name {
		return clientCreds{}, fmt.Errorf("%s.crt names %q", name, cert.Leaf.Subject.CommonName)
	}
	sig, err := certs.ReadSigKey(base + ".sigkey")
	if err != nil {
		return clientCreds{}, err
	}
	// A signing key from an older signing secret would fail every
	// signature check.
	if want := certs.UserKey(c.SigningSecret, name); string(want) != string(sig) {
		return clientCreds{}, fmt.Errorf("%s.sigkey does not match the room signing secret", name)
	}
	return clientCreds{cert: cert, sigKey: sig}, nil
}

// WritePSK writes the pre-shared key to path as `parley keys gen` does
// (base64, mode 0600), for a student's `parley join --psk-file`.
func (c *Credentials) WritePSK(path string) error {
	if c.PSK == nil {
		return errors.New("scenario: this scenario has no pre-shared key")
	}
	enc := make([]byte, 0, 48)
	enc = base64.StdEncoding.AppendEncode(enc, c.PSK)
	if err := os.WriteFile(path, append(enc, '\n'), 0o600); err != nil {
		return fmt.Errorf("scenario: failed to write the pre-shared key: %w", err)
	}
	return nil
}

func (c *Credentials) serverConfig(scheme string) schemes.Config {
	cfg := schemes.Config{PSK: c.PSK}
	if needsTLS(scheme) {
		cfg.Certificates = []tls.Certificate{c.Server}
		cfg.RootCAs = c.RootCAs
		cfg.SigningSecret = c.SigningSecret
	}
	return cfg
}

func (c *Credentials) clientConfig(scheme, name string) (schemes.Config, error) {
	cfg := schemes.Config{PSK: c.PSK}
	if needsTLS(scheme) {
		cfg.RootCAs = c.RootCAs
		cfg.ServerName = ServerName
	}
	if scheme == "mtls" {
		cert, sig, err := c.Client(name)
		if err != nil {
			return cfg, err
		}
		cfg.Certificates = []tls.Certificate{cert}
		cfg.SigKey = sig
	}
	return cfg, nil
}
