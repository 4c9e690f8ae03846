// Package certs runs parley's lab certificate authority: it creates (or
// finds) the CA and the room signing secret, issues server and client
// certificates, explains a certificate in words, and makes deliberately
// broken certificates for the labs.
//
// Everything lives in one folder (by default <parley home>/certs):
//
//	ca.crt, ca.key            the lab CA (key mode 0400)
//	signing.secret            the mtls room signing secret, 32 bytes as hex (0600)
//	server.crt, server.key    the room server's certificate
//	NAME.crt, NAME.key        a client certificate (CN=NAME) and its key
//	NAME.sigkey               NAME's mtls signing key K_user, 32 bytes as hex (0600)
//	rogue-ca.crt, rogue-ca.key a second CA that nobody trusts (certs bad rogue-ca)
//
// Keys are ECDSA P-256 unless Options.RSA asks for RSA-2048. Key files are
// written with mode 0600 (the CA keys 0400), certificates 0644, each
// atomically (a temporary file renamed into place).
//
// The package only reads and writes files and returns values and typed
// errors; printing is the caller's job. Functions are safe for concurrent
// use on different folders; two processes issuing into the same folder at
// once may overwrite each other's files.
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names inside the certificate folder.
const (
	CACertFile        = "ca.crt"
	CAKeyFile         = "ca.key"
	SigningSecretFile = "signing.secret"
	ServerCertFile    = "server.crt"
	ServerKeyFile     = "server.key"
	RogueCACertFile   = "rogue-ca.crt"
	RogueCAKeyFile    = "rogue-ca.key"
)

// File modes, as mkcert uses them.
const (
	CertMode  fs.FileMode = 0o644
	KeyMode   fs.FileMode = 0o600
	CAKeyMode fs.FileMode = 0o400
)

// Validity defaults, in days.
const (
	DefaultCADays   = 3650
	DefaultLeafDays = 825
)

// SecretSize is the size in bytes of the signing secret and of every
// user's signing key.
const SecretSize = 32

// UserKeyLabel is the constant that derives a user's signing key from the
// room signing secret: K_user = HMAC-SHA256(secret, UserKeyLabel ‖ name)
// (RFC 2104). It must match schemes.UserKey.
const UserKeyLabel = "parley user key"

// DefaultHosts are the names a server certificate covers unless told
// otherwise.
var DefaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// Errors that callers check with errors.Is.
var (
	// ErrNoCA reports a folder without a lab CA; `parley certs init` makes one.
	ErrNoCA = errors.New("certs: no lab CA")
	// ErrNoSigningSecret reports a folder without the room signing secret.
	ErrNoSigningSecret = errors.New("certs: no room signing secret")
	// ErrBadName reports a client name that cannot name a certificate.
	ErrBadName = errors.New("certs: bad name")
)

// Options shape the keys and certificates that are issued.
type Options struct {
	// RSA asks for RSA-2048 keys instead of ECDSA P-256.
	RSA bool
	// Days is the validity period; 0 means DefaultCADays for a CA and
	// DefaultLeafDays for a leaf.
	Days int
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o Options) days(def int) int {
	if o.Days > 0 {
		return o.Days
	}
	return def
}

// File describes one file that was written or found.
type File struct {
	Path string
	Mode fs.FileMode
	// What says what the file holds, such as "CA certificate".
	What string
	// Expires is the certificate's NotAfter; zero for keys and secrets.
	Expires time.Time
}

// CA is a certificate authority able to sign leaves.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// CertPath and KeyPath are where it was loaded from or written to.
	CertPath, KeyPath string
}

// InitResult reports what Init did.
type InitResult struct {
	CA CA
	// CACreated is true when the CA was made now, false when it was found.
	CACreated bool
	// SecretCreated is true when the signing secret was made now.
	SecretCreated bool
	SecretPath    string
	Files         []File
}

// Init creates the lab CA and the room signing secret in dir, or finds them
// if they are already there; it never replaces either. It fails if only half
// of the CA (certificate or key) exists, or if what it finds does not parse.
func Init(dir string, o Options) (*InitResult, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("certs: failed to create %s: %w", dir, err)
	}
	res := &InitResult{}
	ca, err := LoadCA(dir)
	switch {
	case err == nil:
		res.CA = *ca
	case errors.Is(err, ErrNoCA):
		ca, err = newCA(dir, CACertFile, CAKeyFile, "parley lab CA", o)
		if err != nil {
			return nil, err
		}
		res.CA, res.CACreated = *ca, true
	default:
		return nil, err
	}
	res.Files = append(res.Files,
		File{Path: res.CA.CertPath, Mode: CertMode, What: "CA certificate", Expires: res.CA.Cert.NotAfter},
		File{Path: res.CA.KeyPath, Mode: CAKeyMode, What: "CA private key"})

	res.SecretPath = filepath.Join(dir, SigningSecretFile)
	_, err = ReadSigningSecret(dir)
	switch {
	case err == nil:
	case errors.Is(err, ErrNoSigningSecret):
		secret := make([]byte, SecretSize)
		if _, err := rand.Read(secret); err != nil {
			return nil, fmt.Errorf("certs: failed to draw the signing secret: %w", err)
		}
		if err := writeFile(res.SecretPath, []byte(hex.EncodeToString(secret)+"\n"), KeyMode); err != nil {
			return nil, err
		}
		res.SecretCreated = true
	default:
		return nil, err
	}
	res.Files = append(res.Files, File{Path: res.SecretPath, Mode: KeyMode, What: "room signing secret (mtls)"})
	return res, nil
}

// LoadCA reads the lab CA from dir. A folder with neither file returns an
// error wrapping ErrNoCA; a folder with only one of them is an error too.
func LoadCA(dir string) (*CA, error) {
	return loadCA(dir, CACertFile, CAKeyFile)
}

func loadCA(dir, certName, keyName string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, certName), filepath.Join(dir, keyName)
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	if errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s (%s is missing)", ErrNoCA, dir, certName)
	}
	if certErr != nil {
		return nil, fmt.Errorf("certs: failed to read the CA certificate: %w", certErr)
	}
	if keyErr != nil {
		return nil, fmt.Errorf("certs: failed to read the CA key: %w", keyErr)
	}
	cert, err := ParseCertificateFile(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", certPath, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("certs: %s is not a CA certificate", certPath)
	}
	key, err := ParseKeyFile(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", keyPath, err)
	}
	if !samePublicKey(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("certs: %s does not belong to %s", keyPath, certPath)
	}
	return &CA{Cert: cert, Key: key, CertPath: certPath, KeyPath: keyPath}, nil
}

// CAPool returns a pool holding the lab CA certificate of dir, for
// tls.Config.RootCAs and ClientCAs.
func CAPool(dir string) (*x509.CertPool, error) {
	return LoadPool(filepath.Join(dir, CACertFile))
}

// LoadPool returns a pool holding every certificate in the PEM file path.
// A missing file returns an error wrapping ErrNoCA and fs.ErrNotExist.
func LoadPool(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s is missing: %w", ErrNoCA, path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("certs: failed to read %s: %w", path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("certs: %s holds no PEM certificate", path)
	}
	return pool, nil
}

// ReadSigningSecret reads the room signing secret of dir. A missing file
// returns an error wrapping ErrNoSigningSecret.
func ReadSigningSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, SigningSecretFile)
	b, err := readHexKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s (%s is missing)", ErrNoSigningSecret, dir, SigningSecretFile)
	}
	return b, err
}

// ReadSigKey reads a user's signing key file (NAME.sigkey).
func ReadSigKey(path string) ([]byte, error) { return readHexKey(path) }

func readHexKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certs: failed to read %s: %w", path, err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(b) != SecretSize {
		return nil, fmt.Errorf("certs: %s does not hold %d bytes as hex", path, SecretSize)
	}
	return b, nil
}

// UserKey derives a user's signing key from the room signing secret:
// HMAC-SHA256(secret, "parley user key" ‖ name) (RFC 2104). It is the same
// derivation as schemes.UserKey.
func UserKey(secret []byte, name string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(UserKeyLabel))
	m.Write([]byte(name))
	return m.Sum(nil)
}

// CheckName reports whether name can name a client certificate: 1-32
// letters, digits, '_', '-' or '.', as room names, and not one of the
// folder's own file names (ca, server, rogue-ca, signing).
func CheckName(name string) error {
	if len(name) < 1 || len(name) > 32 {
		return fmt.Errorf("%w %q: want 1-32 characters", ErrBadName, name)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.'
		if !ok {
			return fmt.Errorf("%w %q: only letters, digits, '_', '-' and '.' are allowed", ErrBadName, name)
		}
	}
	if name[0] == '.' {
		return fmt.Errorf("%w %q: it must not start with '.'", ErrBadName, name)
	}
	switch strings.ToLower(name) {
	case "ca", "server", "rogue-ca", "signing":
		return fmt.Errorf("%w %q: it is reserved for the folder's own files", ErrBadName, name)
	}
	return nil
}

// IssueServer issues server.crt and server.key in dir, signed by the lab CA,
// for hosts (DNS names and IP addresses; DefaultHosts when empty). It
// replaces an earlier server certificate.
func IssueServer(dir string, hosts []string, o Options) ([]File, error) {
	ca, err := LoadCA(dir)
	if err != nil {
		return nil, err
	}
	if len(hosts) == 0 {
		hosts = DefaultHosts
	}
	tmpl, err := leafTemplate(hosts[0], hosts, o)
	if err != nil {
		return nil, err
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	return issue(dir, "server", tmpl, ca, o)
}

// IssueClient issues NAME.crt (CN=name, ClientAuth usage), NAME.key and
// NAME.sigkey (the user's mtls signing key, derived from the room signing
// secret) in dir. It replaces earlier files of the same name.
func IssueClient(dir, name string, o Options) ([]File, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	ca, err := LoadCA(dir)
	if err != nil {
		return nil, err
	}
	secret, err := ReadSigningSecret(dir)
	if err != nil {
		return nil, err
	}
	tmpl, err := leafTemplate(name, nil, o)
	if err != nil {
		return nil, err
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	files, err := issue(dir, name, tmpl, ca, o)
	if err != nil {
		return nil, err
	}
	sigPath := filepath.Join(dir, name+".sigkey")
	if err := writeFile(sigPath, []byte(hex.EncodeToString(UserKey(secret, name))+"\n"), KeyMode); err != nil {
		return nil, err
	}
	return append(files, File{Path: sigPath, Mode: KeyMode, What: "signing key (mtls)"}), nil
}

// newCA makes a self-signed CA and writes it to dir.
func newCA(dir, certName, keyName, cn string, o Options) (*CA, error) {
	key, err := newKey(o)
	if err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := o.now()
	host, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:         cn,
			Organization:       []string{"parley (education only)"},
			OrganizationalUnit: []string{host},
		},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(0, 0, o.days(DefaultCADays)),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("certs: failed to sign the CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("certs: failed to parse the new CA certificate: %w", err)
	}
	ca := &CA{Cert: cert, Key: key, CertPath: filepath.Join(dir, certName), KeyPath: filepath.Join(dir, keyName)}
	if err := writeKey(ca.KeyPath, key, CAKeyMode); err != nil {
		return nil, err
	}
	if err := writeFile(ca.CertPath, pemCert(der), CertMode); err != nil {
		return nil, err
	}
	return ca, nil
}

// leafTemplate returns a leaf certificate template with subject cn covering
// hosts.
func leafTemplate(cn string, hosts []string, o Options) (*x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := o.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"parley (education only)"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(0, 0, o.days(DefaultLeafDays)),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if o.RSA {
		// RSA key exchange in TLS 1.2 encrypts to the key (RFC 5246 §7.4.7.1).
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		switch {
		case h == "":
			return nil, fmt.Errorf("certs: empty host name")
		case net.ParseIP(h) != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(h))
		default:
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl, nil
}

// issue signs tmpl with ca (or self-signs it when ca is nil) and writes
// name.crt and name.key to dir.
func issue(dir, name string, tmpl *x509.Certificate, ca *CA, o Options) ([]File, error) {
	key, err := newKey(o)
	if err != nil {
		return nil, err
	}
	parent, signer := tmpl, crypto.Signer(key)
	if ca != nil {
		parent, signer = ca.Cert, ca.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("certs: failed to sign the certificate for %s: %w", name, err)
	}
	certPath, keyPath := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := writeKey(keyPath, key, KeyMode); err != nil {
		return nil, err
	}
	if err := writeFile(certPath, pemCert(der), CertMode); err != nil {
		return nil, err
	}
	return []File{
		{Path: certPath, Mode: CertMode, What: "certificate", Expires: tmpl.NotAfter},
		{Path: keyPath, Mode: KeyMode, What: "private key"},
	}, nil
}

func newKey(o Options) (crypto.Signer, error) {
	if o.RSA {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("certs: failed to generate an RSA key: %w", err)
		}
		return k, nil
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: failed to generate an ECDSA key: %w", err)
	}
	return k, nil
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certs: failed to draw a serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func writeKey(path string, key crypto.Signer, mode fs.FileMode) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("certs: failed to encode the key for %s: %w", path, err)
	}
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), mode)
}

// writeFile writes data to path with exactly mode (whatever the umask) by
// renaming a temporary file into place, so that a reader never sees half a
// key and a 0400 file can be replaced.
func writeFile(path string, data []byte, mode fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("certs: failed to write %s: %w", path, err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp, mode)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("certs: failed to write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("certs: failed to write %s: %w", path, err)
	}
	return nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// ParseCertificateFile parses the first certificate of a PEM file. It is
// safe on untrusted input.
func ParseCertificateFile(data []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("certs: no PEM certificate found (want a -----BEGIN CERTIFICATE----- block)")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certs: failed to parse the certificate: %w", err)
		}
		return cert, nil
	}
}

// ParseKeyFile parses the first private key of a PEM file: PKCS #8
// ("PRIVATE KEY"), SEC 1 ("EC PRIVATE KEY") or PKCS #1 ("RSA PRIVATE KEY").
// It is safe on untrusted input.
func ParseKeyFile(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("certs: no PEM private key found (want a -----BEGIN PRIVATE KEY----- block)")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("certs: failed to parse the %s: %w", strings.ToLower(block.Type), err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("certs: unsupported private key type %T", key)
		}
		return s, nil
	}
}
