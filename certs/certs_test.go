package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func mustInit(t *testing.T, o Options) (string, *InitResult) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "certs")
	res, err := Init(dir, o)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return dir, res
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCertificateFile(data)
	if err != nil {
		t.Fatalf("ParseCertificateFile(%s): %v", path, err)
	}
	return c
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("mode of %s: got %o, want %o", filepath.Base(path), got, want)
	}
}

func TestInitIsIdempotent(t *testing.T) {
	dir, first := mustInit(t, Options{})
	if !first.CACreated || !first.SecretCreated {
		t.Fatalf("first Init: got CACreated=%v SecretCreated=%v, want both true", first.CACreated, first.SecretCreated)
	}
	checkMode(t, filepath.Join(dir, CACertFile), CertMode)
	checkMode(t, filepath.Join(dir, CAKeyFile), CAKeyMode)
	checkMode(t, filepath.Join(dir, SigningSecretFile), KeyMode)
	secret1, err := ReadSigningSecret(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(secret1) != SecretSize {
		t.Errorf("signing secret: got %d bytes, want %d", len(secret1), SecretSize)
	}

	second, err := Init(dir, Options{})
	if err != nil {
		t.Fatalf("second Init: %v", err)
	}
	if second.CACreated || second.SecretCreated {
		t.Errorf("second Init: got CACreated=%v SecretCreated=%v, want both false", second.CACreated, second.SecretCreated)
	}
	if !second.CA.Cert.Equal(first.CA.Cert) {
		t.Error("second Init replaced the CA certificate")
	}
	secret2, _ := ReadSigningSecret(dir)
	if !bytes.Equal(secret1, secret2) {
		t.Error("second Init replaced the signing secret")
	}
	ca := first.CA.Cert
	if !ca.IsCA || !ca.MaxPathLenZero || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA: got IsCA=%v MaxPathLenZero=%v KeyUsage=%v, want a path-length-0 signing CA", ca.IsCA, ca.MaxPathLenZero, ca.KeyUsage)
	}
}

func TestInitRefusesHalfCA(t *testing.T) {
	dir, _ := mustInit(t, Options{})
	if err := os.Remove(filepath.Join(dir, CAKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(dir, Options{}); err == nil || errors.Is(err, ErrNoCA) {
		t.Errorf("Init with ca.key missing: got %v, want an error that is not ErrNoCA", err)
	}
}

func TestIssueServer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		rsa     bool
		keyType string
	}{
		{"ecdsa", false, "ECDSA P-256"},
		{"rsa", true, "RSA 2048"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, res := mustInit(t, Options{RSA: tc.rsa})
			files, err := IssueServer(dir, []string{"localhost", "127.0.0.1", "::1", "room.test"}, Options{RSA: tc.rsa, Days: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != 2 {
				t.Fatalf("got %d files, want 2", len(files))
			}
			checkMode(t, filepath.Join(dir, ServerCertFile), CertMode)
			checkMode(t, filepath.Join(dir, ServerKeyFile), KeyMode)
			c := readCert(t, filepath.Join(dir, ServerCertFile))
			if got, want := c.DNSNames, []string{"localhost", "room.test"}; !slices.Equal(got, want) {
				t.Errorf("DNS SANs: got %v, want %v", got, want)
			}
			var ips []string
			for _, ip := range c.IPAddresses {
				ips = append(ips, ip.String())
			}
			if want := []string{"127.0.0.1", "::1"}; !slices.Equal(ips, want) {
				t.Errorf("IP SANs: got %v, want %v", ips, want)
			}
			if want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}; !slices.Equal(c.ExtKeyUsage, want) {
				t.Errorf("EKUs: got %v, want %v", c.ExtKeyUsage, want)
			}
			if d := c.NotAfter.Sub(time.Now()); d < 9*24*time.Hour || d > 11*24*time.Hour {
				t.Errorf("validity: got NotAfter in %v, want about 10 days", d)
			}
			in := Inspect(c, res.CA.Cert, time.Now())
			if in.KeyType != tc.keyType {
				t.Errorf("key type: got %q, want %q", in.KeyType, tc.keyType)
			}
			pool, _ := CAPool(dir)
			for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
				if _, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: host}); err != nil {
					t.Errorf("verify for %s: %v", host, err)
				}
			}
			keyPEM, _ := os.ReadFile(filepath.Join(dir, ServerKeyFile))
			key, err := ParseKeyFile(keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			switch key.(type) {
			case *ecdsa.PrivateKey:
				if tc.rsa {
					t.Error("got an ECDSA key, want RSA")
				}
			case *rsa.PrivateKey:
				if !tc.rsa {
					t.Error("got an RSA key, want ECDSA")
				}
			}
		})
	}
}

func TestIssueClient(t *testing.T) {
	dir, _ := mustInit(t, Options{})
	if _, err := IssueClient(dir, "alice", Options{}); err != nil {
		t.Fatal(err)
	}
	checkMode(t, filepath.Join(dir, "alice.crt"), CertMode)
	checkMode(t, filepath.Join(dir, "alice.key"), KeyMode)
	checkMode(t, filepath.Join(dir, "alice.sigkey"), KeyMode)
	c := readCert(t, filepath.Join(dir, "alice.crt"))
	if c.Subject.CommonName != "alice" {
		t.Errorf("CN: got %q, want alice", c.Subject.CommonName)
	}
	if want := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}; !slices.Equal(c.ExtKeyUsage, want) {
		t.Errorf("EKUs: got %v, want %v", c.ExtKeyUsage, want)
	}
	pool, _ := CAPool(dir)
	if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("verify as a client certificate: %v", err)
	}
	secret, _ := ReadSigningSecret(dir)
	sig, err := ReadSigKey(filepath.Join(dir, "alice.sigkey"))
	if err != nil {
		t.Fatal(err)
	}
	if want := UserKey(secret, "alice"); !bytes.Equal(sig, want) {
		t.Errorf("alice.sigkey: got %x, want %x", sig, want)
	}
}

func TestUserKeyVector(t *testing.T) {
	// The same vector is in schemes/testdata/mtls_vectors.txt.
	secret, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	got := hex.EncodeToString(UserKey(secret, "alice"))
	const want = "f07bbe91846be3d3463b323df193cf7d6731c88d74772a5b491d54d4ac5f9bae"
	if got != want {
		t.Errorf("UserKey: got %s, want %s", got, want)
	}
}

func TestBadNames(t *testing.T) {
	dir, _ := mustInit(t, Options{})
	for _, name := range []string{"", "../x", "a/b", "ca", "Server", "rogue-ca", ".hidden", "thirty-three-characters-long-name"} {
		t.Run(name, func(t *testing.T) {
			if _, err := IssueClient(dir, name, Options{}); !errors.Is(err, ErrBadName) {
				t.Errorf("IssueClient(%q): got %v, want ErrBadName", name, err)
			}
		})
	}
}

func TestIssueWithoutCA(t *testing.T) {
	dir := t.TempDir()
	if _, err := IssueServer(dir, nil, Options{}); !errors.Is(err, ErrNoCA) {
		t.Errorf("IssueServer without CA: got %v, want ErrNoCA", err)
	}
	if _, err := IssueClient(dir, "bob", Options{}); !errors.Is(err, ErrNoCA) {
		t.Errorf("IssueClient without CA: got %v, want ErrNoCA", err)
	}
}

// TestBadKindsFailVerification checks that each bad kind fails x509
// verification, with the lab CA as root, for its own reason.
func TestBadKindsFailVerification(t *testing.T) {
	dir, res := mustInit(t, Options{})
	pool, _ := CAPool(dir)
	for _, tc := range []struct {
		kind  BadKind
		usage x509.ExtKeyUsage
		check func(t *testing.T, c *x509.Certificate, err error)
	}{
		{BadExpired, x509.ExtKeyUsageServerAuth, func(t *testing.T, c *x509.Certificate, err error) {
			var e x509.CertificateInvalidError
			if !errors.As(err, &e) || e.Reason != x509.Expired {
				t.Errorf("got %v, want CertificateInvalidError{Expired}", err)
			}
		}},
		{BadWrongHost, x509.ExtKeyUsageServerAuth, func(t *testing.T, c *x509.Certificate, err error) {
			var e x509.HostnameError
			if !errors.As(err, &e) {
				t.Errorf("got %v, want HostnameError", err)
			}
			if !slices.Equal(c.DNSNames, []string{WrongHost}) {
				t.Errorf("SANs: got %v, want [%s]", c.DNSNames, WrongHost)
			}
		}},
		{BadSelfSigned, x509.ExtKeyUsageServerAuth, func(t *testing.T, c *x509.Certificate, err error) {
			var e x509.UnknownAuthorityError
			if !errors.As(err, &e) {
				t.Errorf("got %v, want UnknownAuthorityError", err)
			}
			if !IsSelfSigned(c) {
				t.Error("the certificate does not sign itself")
			}
		}},
		{BadNoClientAuth, x509.ExtKeyUsageClientAuth, func(t *testing.T, c *x509.Certificate, err error) {
			var e x509.CertificateInvalidError
			if !errors.As(err, &e) || e.Reason != x509.IncompatibleUsage {
				t.Errorf("got %v, want CertificateInvalidError{IncompatibleUsage}", err)
			}
		}},
		{BadRogueCA, x509.ExtKeyUsageServerAuth, func(t *testing.T, c *x509.Certificate, err error) {
			var e x509.UnknownAuthorityError
			if !errors.As(err, &e) {
				t.Errorf("got %v, want UnknownAuthorityError", err)
			}
			rogue := readCert(t, filepath.Join(dir, RogueCACertFile))
			if c.CheckSignatureFrom(rogue) != nil {
				t.Error("the certificate is not signed by rogue-ca.crt")
			}
			checkMode(t, filepath.Join(dir, RogueCAKeyFile), CAKeyMode)
		}},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			name := "bad-" + string(tc.kind)
			if _, err := Bad(dir, tc.kind, name, nil, Options{}); err != nil {
				t.Fatal(err)
			}
			checkMode(t, filepath.Join(dir, name+".crt"), CertMode)
			checkMode(t, filepath.Join(dir, name+".key"), KeyMode)
			c := readCert(t, filepath.Join(dir, name+".crt"))
			if c.Subject.CommonName != name {
				t.Errorf("CN: got %q, want %q", c.Subject.CommonName, name)
			}
			_, err := c.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost", KeyUsages: []x509.ExtKeyUsage{tc.usage}})
			if err == nil {
				t.Fatal("verification succeeded, want it to fail")
			}
			tc.check(t, c, err)
			// The same certificate is fine in every other respect: it
			// fails only for its one reason.
			in := Inspect(c, res.CA.Cert, time.Now())
			wantLab := tc.kind != BadSelfSigned && tc.kind != BadRogueCA
			if in.SignedByLabCA != wantLab {
				t.Errorf("SignedByLabCA: got %v, want %v", in.SignedByLabCA, wantLab)
			}
			if in.Expired != (tc.kind == BadExpired) {
				t.Errorf("Expired: got %v, want %v", in.Expired, tc.kind == BadExpired)
			}
			if in.SelfSigned != (tc.kind == BadSelfSigned) {
				t.Errorf("SelfSigned: got %v, want %v", in.SelfSigned, tc.kind == BadSelfSigned)
			}
		})
	}
	if _, err := ParseBadKind("nonsense"); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("ParseBadKind(nonsense): got %v, want ErrUnknownKind", err)
	}
}

func TestInspect(t *testing.T) {
	dir, res := mustInit(t, Options{})
	if _, err := IssueClient(dir, "alice", Options{}); err != nil {
		t.Fatal(err)
	}
	c := readCert(t, filepath.Join(dir, "alice.crt"))
	in := Inspect(c, res.CA.Cert, time.Now())
	if in.CommonName != "alice" || !in.SignedByLabCA || !in.LabCAChecked || in.Expired || in.IsCA || in.SelfSigned {
		t.Errorf("got %+v, want alice, signed by the lab CA, valid, not a CA", in)
	}
	if !slices.Equal(in.EKUs, []string{"client authentication"}) {
		t.Errorf("EKUs: got %v, want [client authentication]", in.EKUs)
	}
	if len(in.SHA256) != 32*3-1 {
		t.Errorf("fingerprint %q: got %d characters, want %d", in.SHA256, len(in.SHA256), 32*3-1)
	}
	ca := Inspect(res.CA.Cert, res.CA.Cert, time.Now())
	if !ca.IsCA || !ca.SelfSigned || !ca.SignedByLabCA {
		t.Errorf("CA: got %+v, want a self-signed CA that is the lab CA", ca)
	}
	if later := Inspect(c, nil, c.NotAfter.Add(time.Second)); !later.Expired || later.LabCAChecked {
		t.Errorf("after NotAfter without CA: got Expired=%v LabCAChecked=%v, want true, false", later.Expired, later.LabCAChecked)
	}
}

func TestParseFiles(t *testing.T) {
	dir, _ := mustInit(t, Options{})
	certPEM, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	keyPEM, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	for _, tc := range []struct {
		name   string
		data   []byte
		certOK bool
		keyOK  bool
	}{
		{"cert", certPEM, true, false},
		{"key", keyPEM, false, true},
		{"both", append(append([]byte{}, keyPEM...), certPEM...), true, true},
		{"empty", nil, false, false},
		{"garbage", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseCertificateFile(tc.data); (err == nil) != tc.certOK {
				t.Errorf("ParseCertificateFile: got %v, want ok=%v", err, tc.certOK)
			}
			if _, err := ParseKeyFile(tc.data); (err == nil) != tc.keyOK {
				t.Errorf("ParseKeyFile: got %v, want ok=%v", err, tc.keyOK)
			}
		})
	}
}

func FuzzParseCertificateFile(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "certs")
	if _, err := Init(dir, Options{}); err != nil {
		f.Fatal(err)
	}
	if _, err := IssueServer(dir, nil, Options{}); err != nil {
		f.Fatal(err)
	}
	for _, name := range []string{CACertFile, CAKeyFile, ServerCertFile, ServerKeyFile} {
		data, _ := os.ReadFile(filepath.Join(dir, name))
		f.Add(data)
	}
	f.Add([]byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if c, err := ParseCertificateFile(data); err == nil {
			Inspect(c, c, time.Now())
		}
		if k, err := ParseKeyFile(data); err == nil && k.Public() == nil {
			t.Error("parsed a key without a public half")
		}
	})
}
