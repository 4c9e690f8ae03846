package schemes

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

func init() {
	register(Properties{
		Name:             "tls",
		Summary:          "TLS 1.3 (1.2 on request) with the room's lines inside; the server proves who it is",
		Confidentiality:  true,
		Integrity:        true,
		ServerAuth:       true,
		ReplayProtection: true,
		ForwardSecrecy:   true,
		Leaks: []string{
			"who talks to whom (addresses, ports) and when",
			"the server name the client asks for (SNI, in the clear)",
			"the size and timing of every message",
			"in TLS 1.2, the server's certificate (in 1.3 it is encrypted)",
		},
		Weaknesses: []string{
			"clients are not authenticated: names in the room are self-asserted",
			"a client run with --insecure-skip-verify accepts any certificate, so a man in the middle reads and rewrites everything",
			"whoever holds the server's key, or a CA the clients trust, can impersonate the server",
		},
		Teaches: "server authentication, forward secrecy, and what the handshake still reveals (SNI, sizes; the certificate too in 1.2)",
	}, func(cfg Config) (Scheme, error) { return newTLSScheme("tls", cfg) })
}

// tlsScheme is the tls scheme, and the TLS layer of mtls when mutual is set.
// It is immutable after newTLSScheme, so it is safe for concurrent use.
type tlsScheme struct {
	name   string
	cfg    Config
	max    int
	server *tls.Config // nil without Config.Certificates
	client *tls.Config
}

var _ Scheme = (*tlsScheme)(nil)

func newTLSScheme(name string, cfg Config) (*tlsScheme, error) {
	version := cfg.TLSVersion
	switch version {
	case 0:
		version = tls.VersionTLS13
	case tls.VersionTLS12, tls.VersionTLS13:
	default:
		return nil, fmt.Errorf("schemes: %s: unsupported TLS version %#04x (want 1.2 or 1.3)", name, cfg.TLSVersion)
	}
	mutual := name == "mtls"
	s := &tlsScheme{name: name, cfg: cfg, max: cfg.maxMessage()}

	// Both sides accept 1.2 and 1.3 and offer at most version: asking
	// for 1.2 on either side gives a 1.2 session, as the labs need to show
	// the certificate in the clear (RFC 8446 §4.4.2 encrypts it in 1.3).
	s.server = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   version,
		Certificates: cfg.Certificates,
		KeyLogWriter: cfg.KeyLog,
	}
	if mutual {
		// VerifyClientCertIfGiven lets crypto/tls verify the chain and the
		// ClientAuth usage (and send the precise alert), while
		// verifyClientPresent turns a missing certificate into a typed
		// error instead of crypto/tls's untyped one.
		s.server.ClientAuth = tls.VerifyClientCertIfGiven
		s.server.ClientCAs = cfg.RootCAs
		s.server.VerifyConnection = verifyClientPresent
	}
	s.client = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   version,
		RootCAs:      cfg.RootCAs,
		ServerName:   cfg.ServerName,
		KeyLogWriter: cfg.KeyLog,
		// InsecureSkipVerify reproduces the original projects' mistake: the
		// client then accepts any certificate, including a
		// man-in-the-middle's. Only the flag of the same name sets it.
		InsecureSkipVerify: cfg.InsecureSkipVerify,
	}
	if mutual && len(cfg.Certificates) > 0 {
		// crypto/tls would withhold a certificate whose issuer is not among
		// the CAs the server names (RFC 8446 §4.2.4), and the server would
		// then report a missing certificate. Sending it anyway lets the
		// server say what is wrong with it: the lesson of the rogue-ca and
		// self-signed labs.
		own := cfg.Certificates[0]
		s.client.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &own, nil }
	}
	return s, nil
}

func (s *tlsScheme) Name() string { return s.name }

func (s *tlsScheme) Properties() Properties { p, _ := Describe(s.name); return p }

// Server runs the TLS handshake as the server, within the caller's
// deadline on c. Failures are a *MismatchError when the peer does not speak
// TLS, a *CertificateError when a certificate was refused (by either side),
// and otherwise an error naming the peer's address.
func (s *tlsScheme) Server(c net.Conn) (Conn, error) {
	tc, err := s.serverHandshake(c)
	if err != nil {
		return nil, err
	}
	return newLineConn(tc, s.max, Peer{Detail: sessionDetail(tc.ConnectionState())}), nil
}

// Client runs the TLS handshake as the client, within the caller's deadline
// on c, and verifies the server's certificate against Config.RootCAs and
// Config.ServerName unless Config.InsecureSkipVerify is set. Its errors are
// those of Server. Peer.Identity is the verified server name.
func (s *tlsScheme) Client(c net.Conn) (Conn, error) {
	tc, err := s.clientHandshake(c)
	if err != nil {
		return nil, err
	}
	return newLineConn(tc, s.max, s.clientPeer(tc)), nil
}

func (s *tlsScheme) serverHandshake(c net.Conn) (*tls.Conn, error) {
	if len(s.cfg.Certificates) == 0 {
		return nil, fmt.Errorf("schemes: %s server needs a certificate (Config.Certificates)", s.name)
	}
	if s.server.ClientAuth != tls.NoClientCert && s.cfg.RootCAs == nil {
		return nil, fmt.Errorf("schemes: %s server needs the CA that client certificates chain to (Config.RootCAs)", s.name)
	}
	tc := tls.Server(c, s.server)
	if err := tc.Handshake(); err != nil {
		return nil, s.handshakeError(c, err, "client", s.cfg.Certificates)
	}
	return tc, nil
}

func (s *tlsScheme) clientHandshake(c net.Conn) (*tls.Conn, error) {
	if !s.cfg.InsecureSkipVerify {
		if s.cfg.ServerName == "" {
			return nil, fmt.Errorf("schemes: %s client needs the server's name to verify its certificate (Config.ServerName)", s.name)
		}
		if s.cfg.RootCAs == nil {
			return nil, fmt.Errorf("schemes: %s client needs the CA it trusts (Config.RootCAs)", s.name)
		}
	}
	tc := tls.Client(c, s.client)
	if err := tc.Handshake(); err != nil {
		return nil, s.handshakeError(c, err, "server", s.cfg.Certificates)
	}
	return tc, nil
}

func (s *tlsScheme) clientPeer(tc *tls.Conn) Peer {
	p := Peer{Detail: sessionDetail(tc.ConnectionState())}
	if !s.cfg.InsecureSkipVerify {
		p.Identity = s.cfg.ServerName
	} else {
		p.Detail += ", server NOT verified"
	}
	return p
}

// sessionDetail describes a session like "TLS 1.3, TLS_AES_128_GCM_SHA256".
func sessionDetail(cs tls.ConnectionState) string {
	return tls.VersionName(cs.Version) + ", " + tls.CipherSuiteName(cs.CipherSuite)
}

// verifyClientPresent is the mtls server's tls.Config.VerifyConnection: the
// chain was already verified by crypto/tls if there is one.
func verifyClientPresent(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return &CertificateError{Reason: ReasonNoClientCert, Of: "client"}
	}
	return nil
}

// A CertReason says why a certificate was refused.
type CertReason int

// The reasons a certificate is refused.
const (
	// ReasonOther is any refusal not listed below; Err says more.
	ReasonOther CertReason = iota
	// ReasonExpired: the certificate's NotAfter has passed.
	ReasonExpired
	// ReasonNotYetValid: the certificate's NotBefore is in the future.
	ReasonNotYetValid
	// ReasonWrongHost: the certificate does not name the host the client
	// dialled.
	ReasonWrongHost
	// ReasonUnknownAuthority: no trusted CA signed the certificate, as when
	// a man in the middle presents its own.
	ReasonUnknownAuthority
	// ReasonSelfSigned: the certificate signed itself; nobody vouches for
	// it.
	ReasonSelfSigned
	// ReasonNoClientAuth: a client certificate lacks the client
	// authentication extended key usage.
	ReasonNoClientAuth
	// ReasonNoServerAuth: a server certificate lacks the server
	// authentication extended key usage.
	ReasonNoServerAuth
	// ReasonNoClientCert: an mtls client presented no certificate.
	ReasonNoClientCert
)

var reasonNames = [...]string{"other", "expired", "not-yet-valid", "wrong-host", "unknown-authority", "self-signed", "no-client-auth", "no-server-auth", "no-client-cert"}

func (r CertReason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return fmt.Sprintf("CertReason(%d)", int(r))
}

// CertificateError reports a certificate that one side of a tls or mtls
// handshake refused, and why. Labs and callers check it with errors.As and
// look at Reason.
type CertificateError struct {
	Reason CertReason
	// Of is whose certificate it is: "server" or "client".
	Of string
	// Remote is true when the peer refused our certificate and told us so
	// with a TLS alert (RFC 8446 §6.2); then only Reason and Alert are
	// known, and Reason is ReasonOther when the alert does not say.
	Remote bool
	// Alert is the TLS alert that was received, when Remote.
	Alert string
	// Subject is the certificate's common name, when known.
	Subject string
	// Issuer is the certificate issuer's common name, when known.
	Issuer string
	// Host is the name the client asked for and Names the names the
	// certificate is valid for (ReasonWrongHost).
	Host  string
	Names []string
	// NotBefore and NotAfter are the certificate's validity (ReasonExpired,
	// ReasonNotYetValid).
	NotBefore, NotAfter time.Time
	// Err is the underlying error from crypto/tls or crypto/x509.
	Err error
}

func (e *CertificateError) Unwrap() error { return e.Err }

func (e *CertificateError) Error() string {
	whose := "the " + e.Of + "'s certificate"
	if e.Of == "client" {
		whose = "the client certificate"
	}
	if e.Subject != "" {
		whose += fmt.Sprintf(" (%s)", e.Subject)
	}
	const date = "2006-01-02 15:04 UTC"
	var why string
	switch e.Reason {
	case ReasonExpired:
		why = whose + " has expired"
		if !e.NotAfter.IsZero() {
			why = fmt.Sprintf("%s expired on %s", whose, e.NotAfter.UTC().Format(date))
		}
	case ReasonNotYetValid:
		why = whose + " is not valid yet"
		if !e.NotBefore.IsZero() {
			why = fmt.Sprintf("%s is not valid until %s", whose, e.NotBefore.UTC().Format(date))
		}
	case ReasonWrongHost:
		why = fmt.Sprintf("%s is for %s, not %s", whose, strings.Join(e.Names, ", "), e.Host)
		if len(e.Names) == 0 {
			why = fmt.Sprintf("%s names no host, not even %s", whose, e.Host)
		}
	case ReasonUnknownAuthority:
		why = whose + " is signed by an unknown authority"
		if e.Issuer != "" {
			why += fmt.Sprintf(" (%q)", e.Issuer)
		}
		why += " — a possible man-in-the-middle"
	case ReasonSelfSigned:
		why = whose + " is self-signed, so no trusted authority vouches for it — a possible man-in-the-middle"
	case ReasonNoClientAuth:
		why = whose + " lacks the client-authentication usage (extended key usage clientAuth)"
	case ReasonNoServerAuth:
		why = whose + " lacks the server-authentication usage (extended key usage serverAuth)"
	case ReasonNoClientCert:
		why = "the client sent no certificate, and this room requires one"
	default:
		why = whose + " was refused"
		if e.Err != nil && !e.Remote {
			why += ": " + e.Err.Error()
		}
	}
	if e.Remote {
		return fmt.Sprintf("schemes: the %s refused our certificate (TLS alert %q): %s", peerOf(e.Of), e.Alert, why)
	}
	return "schemes: " + why
}

// peerOf names the side that judges the certificate of side of.
func peerOf(of string) string {
	if of == "client" {
		return "server"
	}
	return "client"
}

// handshakeError explains a failed handshake on c. peerSide is "client"
// on the server and "server" on the client; own is our certificate, if any,
// used to explain an alert from a peer that refused it.
func (s *tlsScheme) handshakeError(c net.Conn, err error, peerSide string, own []tls.Certificate) error {
	if rh, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return fmt.Errorf("schemes: %s handshake with %s: %w: %w", s.name, c.RemoteAddr(), &MismatchError{Want: s.name, Got: guessScheme(rh.RecordHeader[:])}, err)
	}
	if ce := certificateError(err, peerSide, s.cfg.ServerName); ce != nil {
		return ce
	}
	ourSide := peerOf(peerSide)
	if ce := remoteCertificateError(err, ourSide, own); ce != nil {
		return ce
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("schemes: %s handshake with %s: the peer closed the connection before the handshake finished (it may not speak TLS): %w", s.name, c.RemoteAddr(), err)
	}
	return fmt.Errorf("schemes: %s handshake with %s failed: %w", s.name, c.RemoteAddr(), err)
}

// guessScheme names the scheme whose first bytes look like b, or "".
func guessScheme(b []byte) string {
	if bytes.HasPrefix(b, []byte("PRLY")) {
		return "aes-cbc-hmac"
	}
	for _, c := range b {
		if c != '\r' && c != '\n' && c != '\t' && (c < 0x20 || c > 0x7e) {
			return ""
		}
	}
	return "plain"
}

// certificateError turns our own refusal of the peer's certificate into a
// *CertificateError, or returns nil when err is not one.
func certificateError(err error, of, host string) *CertificateError {
	if ce, ok := errors.AsType[*CertificateError](err); ok {
		return ce
	}
	cv, ok := errors.AsType[*tls.CertificateVerificationError](err)
	if !ok {
		return nil
	}
	e := &CertificateError{Of: of, Err: err}
	var leaf *x509.Certificate
	if len(cv.UnverifiedCertificates) > 0 {
		leaf = cv.UnverifiedCertificates[0]
		e.Subject = leaf.Subject.CommonName
		e.Issuer = leaf.Issuer.CommonName
		e.NotBefore, e.NotAfter = leaf.NotBefore, leaf.NotAfter
	}
	if he, ok := errors.AsType[x509.HostnameError](cv.Err); ok {
		e.Reason, e.Host = ReasonWrongHost, he.Host
		if he.Certificate != nil {
			e.Names = certNames(he.Certificate)
		}
		return e
	}
	if ie, ok := errors.AsType[x509.CertificateInvalidError](cv.Err); ok {
		switch ie.Reason {
		case x509.Expired:
			// x509 says Expired for both ends of the validity period.
			e.Reason = ReasonExpired
			if leaf != nil && time.Now().Before(leaf.NotBefore) {
				e.Reason = ReasonNotYetValid
			}
		case x509.IncompatibleUsage:
			e.Reason = ReasonNoServerAuth
			if of == "client" {
				e.Reason = ReasonNoClientAuth
			}
		}
		return e
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](cv.Err); ok {
		e.Reason = ReasonUnknownAuthority
		if leaf != nil && selfSigned(leaf) {
			e.Reason = ReasonSelfSigned
		}
	}
	return e
}

// remoteCertificateError turns a TLS alert by which the peer refused our
// certificate into a *CertificateError, or returns nil. of is our side.
// crypto/tls reports a received alert only as a *net.OpError whose text is
// the alert's, so the alert is recognised by comparing with the text
// crypto/tls gives each alert code.
func remoteCertificateError(err error, of string, own []tls.Certificate) *CertificateError {
	code, ok := receivedAlert(err)
	if !ok {
		return nil
	}
	e := &CertificateError{Of: of, Remote: true, Alert: strings.TrimPrefix(tls.AlertError(code).Error(), "tls: "), Err: err}
	var leaf *x509.Certificate
	if len(own) > 0 && len(own[0].Certificate) > 0 {
		leaf = own[0].Leaf
		if leaf == nil {
			leaf, _ = x509.ParseCertificate(own[0].Certificate[0])
		}
	}
	if leaf != nil {
		e.Subject, e.Issuer = leaf.Subject.CommonName, leaf.Issuer.CommonName
		e.NotBefore, e.NotAfter = leaf.NotBefore, leaf.NotAfter
	}
	// Alert codes are from RFC 8446 §6.2.
	switch code {
	case 42, 43, 116: // bad_certificate, unsupported_certificate, certificate_required
		switch {
		case of == "client" && leaf == nil:
			e.Reason = ReasonNoClientCert
		case leaf != nil && of == "client" && !hasUsage(leaf, x509.ExtKeyUsageClientAuth):
			e.Reason = ReasonNoClientAuth
		case leaf != nil && time.Now().After(leaf.NotAfter):
			e.Reason = ReasonExpired
		case leaf != nil && selfSigned(leaf):
			e.Reason = ReasonSelfSigned
		case code == 116:
			e.Reason = ReasonNoClientCert
		}
	case 45: // certificate_expired
		e.Reason = ReasonExpired
	case 48: // unknown_ca
		e.Reason = ReasonUnknownAuthority
		if leaf != nil && selfSigned(leaf) {
			e.Reason = ReasonSelfSigned
		}
	default:
		return nil
	}
	return e
}

// receivedAlert returns the code of a TLS alert received from the peer.
func receivedAlert(err error) (uint8, bool) {
	oe, ok := errors.AsType[*net.OpError](err)
	if !ok || oe.Op != "remote error" || oe.Err == nil {
		return 0, false
	}
	text := oe.Err.Error()
	for code := 0; code < 256; code++ {
		if tls.AlertError(code).Error() == text {
			return uint8(code), true
		}
	}
	return 0, false
}

func hasUsage(c *x509.Certificate, u x509.ExtKeyUsage) bool {
	if len(c.ExtKeyUsage) == 0 {
		return true // no EKU extension: any usage (RFC 5280 §4.2.1.12)
	}
	for _, x := range c.ExtKeyUsage {
		if x == u || x == x509.ExtKeyUsageAny {
			return true
		}
	}
	return false
}

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer) &&
		c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

func certNames(c *x509.Certificate) []string {
	names := append([]string{}, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}
