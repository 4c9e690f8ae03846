package labs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/parley-edu/parley/capture"
	"github.com/parley-edu/parley/certs"
	"github.com/parley-edu/parley/labs/scenario"
	"github.com/parley-edu/parley/schemes"
)

// The files the tls-mitm lab writes: two recordings of the same company's
// room, one negotiated in TLS 1.2 and one in TLS 1.3, without their keys.
const (
	TLSMITMCapture12 = "tls-mitm-tls12.pcapng"
	TLSMITMCapture13 = "tls-mitm-tls13.pcapng"
)

// tlsMITMRetry is how long alice and bob wait between two connections.
const tlsMITMRetry = 2 * time.Second

// tlsMITMCodeLine is what alice sends to payroll, followed by her code.
const tlsMITMCodeLine = "the payroll code is "

func init() {
	register(&Lab{
		ID:       "tls-mitm",
		Title:    "Intercept a TLS member that skips certificate checks; see what TLS 1.2 shows Eve",
		Schemes:  []string{"tls"},
		Minutes:  40,
		Concepts: []string{"server authentication (certificate verification)", "InsecureSkipVerify", "TLS 1.2 vs 1.3: the certificate in the clear"},
		answer:   tlsMITMAnswer,
		check:    tlsMITMCheck,
		demonstrated: "you read alice's code by sitting in the middle with a certificate of your own: TLS without certificate " +
			"verification authenticates nobody, while bob, who verifies, refused you; and a passive Eve reads the server's " +
			"certificate in a TLS 1.2 handshake (RFC 5246 §7.4.2), which TLS 1.3 encrypts (RFC 8446 §4.4.2).",
		start: startTLSMITM,
	})
}

// tlsMITMOrg is the organisation (O=) in the certificate of the recorded
// rooms, such as "Cedar Payroll Ltd".
func tlsMITMOrg(seed []byte) string {
	w := Words()[pick(seed, "org", len(Words()))]
	return strings.ToUpper(w[:1]) + w[1:] + " Payroll Ltd"
}

// tlsMITMAnswer is alice's code and the organisation, separated by a space.
func tlsMITMAnswer(seed []byte) string { return code(seed, "payroll") + " " + tlsMITMOrg(seed) }

func tlsMITMCheck(seed []byte, got string) error {
	first, rest, _ := strings.Cut(got, " ")
	codeOK := first == code(seed, "payroll")
	org := normalize(tlsMITMOrg(seed))
	// The organisation alone, O=..., or the whole subject as tools print it.
	orgOK := rest != "" && strings.Contains(rest, org)
	switch {
	case codeOK && orgOK:
		return nil
	case !codeShape.MatchString(first) && strings.Contains(got, org):
		return notYet("that is the company, but the answer starts with alice's payroll code (word-word-1234), which your relay reads from her connection; then a space and the company")
	case !codeShape.MatchString(first):
		return notYet("give alice's payroll code (word-word-1234), a space, and the organisation (O=) of the recorded room's certificate, e.g. \"amber-falcon-1234 Example Payroll Ltd\"")
	case codeOK && rest == "":
		return notYet("alice's code is right; now add, after a space, the organisation (O=) in the server certificate of the TLS 1.2 recording")
	case codeOK:
		return notYet("alice's code is right, but that is not the organisation in the recorded room's certificate: look at the Certificate message of the TLS 1.2 capture (the TLS 1.3 one does not show it)")
	case orgOK:
		return notYet("the company is right, but that is not alice's payroll code: read it from her connection through your relay (parley mitm --scheme tls)")
	default:
		return notYet("neither part is right for your scenario; check that you ran 'parley labs start tls-mitm' with your own --student id")
	}
}

// codeShape matches a whole secret code such as amber-falcon-7314.
var codeShape = regexp.MustCompile(`^[a-z]+-[a-z]+-[0-9]{4}$`)

func startTLSMITM(ctx context.Context, e *env) (*Session, error) {
	s := &Session{done: make(chan struct{})}
	for _, c := range []struct {
		file    string
		version uint16
	}{{TLSMITMCapture12, tls.VersionTLS12}, {TLSMITMCapture13, tls.VersionTLS13}} {
		path := e.path(c.file)
		if err := recordTLSMITM(ctx, e, path, c.version); err != nil {
			return nil, err
		}
		s.Files = append(s.Files, path)
	}

	sc, err := scenario.Start(ctx, scenario.Options{Scheme: "tls", Logger: e.log})
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Session, error) {
		sc.Close()
		return nil, err
	}
	caPath := e.path("ca.crt")
	if err := copyFile(filepath.Join(sc.Credentials().CertDir, certs.CACertFile), caPath, certs.CertMode); err != nil {
		return fail(err)
	}
	s.Files = append(s.Files, caPath)
	payroll, err := sc.Join("payroll")
	if err != nil {
		return fail(err)
	}
	// bob verifies the room's certificate against the lab CA, as
	// 'parley join --ca' does; alice accepts any certificate.
	careful, err := sc.ClientScheme("bob")
	if err != nil {
		return fail(err)
	}
	careless, err := schemes.New("tls", schemes.Config{ServerName: scenario.ServerName, InsecureSkipVerify: true})
	if err != nil {
		return fail(fmt.Errorf("labs: %w", err))
	}
	relay, err := freeAddr()
	if err != nil {
		return fail(err)
	}
	s.Endpoints = []Endpoint{
		{What: "tls room (your relay's upstream)", Addr: sc.Addr()},
		{What: "alice and bob connect to (start your relay here)", Addr: relay},
	}
	s.Notes = []string{
		fmt.Sprintf("e.g. parley mitm --scheme tls --listen %s --upstream %s", relay, sc.Addr()),
		fmt.Sprintf("alice skips certificate verification (--insecure-skip-verify); bob verifies the room against %s; both try every %s", caPath, tlsMITMRetry),
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); runPayroll(ctx, payroll) }()
	go func() {
		defer wg.Done()
		every(ctx, tlsMITMRetry, func() {
			if msg := tlsMITMSend(ctx, careless, relay, "alice", code(e.seed, "payroll")); msg != "" {
				fmt.Fprintf(e.out, "alice (skips verification): %s\n", msg)
			}
		})
	}()
	go func() {
		defer wg.Done()
		every(ctx, tlsMITMRetry, func() {
			if msg := tlsMITMSend(ctx, careful, relay, "bob", code(e.seed, "bob-payroll")); msg != "" {
				fmt.Fprintf(e.out, "bob (verifies): %s\n", msg)
			}
		})
	}()
	go func() {
		defer close(s.done)
		<-ctx.Done()
		s.err = sc.Close()
		wg.Wait()
	}()
	return s, nil
}

// every runs f at once and then every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func()) {
	for ctx.Err() == nil {
		f()
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
}

// runPayroll acknowledges every private message payroll receives, until
// ctx ends or the room closes.
func runPayroll(ctx context.Context, payroll *scenario.Bot) {
	onPrivate(ctx, payroll, func(from string) {
		payroll.Say("/msg " + from + " received, thanks")
	})
}

// tlsMITMSend connects as name through addr with sch, sends its payroll
// code to payroll and says what happened, or "" when nothing listens at
// addr.
func tlsMITMSend(ctx context.Context, sch schemes.Scheme, addr, name, secret string) string {
	conn, done, err := joinThrough(ctx, sch, addr, name)
	if conn == nil {
		if err == nil {
			return ""
		}
		if _, ok := errors.AsType[*schemes.CertificateError](err); ok {
			return "refused the certificate presented at " + addr + ": " + strings.TrimPrefix(errors.Unwrap(err).Error(), "schemes: ") + "; I sent nothing"
		}
		return err.Error()
	}
	defer done()
	conn.WriteLines([]byte("/msg payroll " + tlsMITMCodeLine + secret + "\n"))
	if err := readUntil(conn, "payroll (private): received"); err != nil {
		return "sent my payroll code, but payroll did not confirm: " + err.Error()
	}
	conn.WriteLines([]byte("/quit\n"))
	return "sent my payroll code through " + addr + " without checking who answered; payroll confirmed"
}

// recordTLSMITM records a short talk in a tls room limited to version,
// whose server presents a certificate naming the student's company, and
// leaves at path only what Eve has: the capture without its keys.
func recordTLSMITM(ctx context.Context, e *env, path string, version uint16) error {
	leaf, roots, err := tlsMITMCertificate(tlsMITMOrg(e.seed))
	if err != nil {
		return err
	}
	err = recordTalk(ctx, scenario.Options{Scheme: "tls", CapturePath: path, Logger: e.log,
		Configure: func(cfg *schemes.Config, server bool) {
			cfg.TLSVersion = version
			if server {
				cfg.Certificates = []tls.Certificate{leaf}
			} else {
				cfg.RootCAs = roots
			}
		}}, []say{
		chat("alice", "is the payroll run still on for friday?"),
		chat("payroll", "yes, send your codes by thursday"),
	})
	if err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err == nil {
		data, err = scenario.StripSecrets(data)
	}
	if err == nil {
		err = os.WriteFile(path, data, 0o644)
	}
	if err == nil {
		err = os.Remove(capture.KeyLogPath(path))
		if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("labs: cannot remove the keys from %s: %w", path, err)
	}
	return nil
}

// tlsMITMCertificate makes, in memory, a CA and a server certificate it
// signs for localhost and 127.0.0.1 whose subject names org
// (CN=localhost, O=org), and returns it with a pool holding the CA.
func tlsMITMCertificate(org string) (tls.Certificate, *x509.CertPool, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("labs: cannot make a CA key: %w", err)
	}
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "parley lab CA (tls-mitm recordings)", Organization: []string{"parley (education only)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("labs: cannot sign the CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("labs: cannot parse the CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("labs: cannot make a server key: %w", err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: scenario.ServerName, Organization: []string{org}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{scenario.ServerName},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, key.Public(), caKey)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("labs: cannot sign the server certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool, nil
}

// copyFile copies src to dst with mode perm.
func copyFile(src, dst string, perm os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("labs: cannot read %s: %w", src, err)
	}
	if err := os.WriteFile(dst, b, perm); err != nil {
		return fmt.Errorf("labs: cannot write %s: %w", dst, err)
	}
	return nil
}
