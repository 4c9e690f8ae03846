package attack

import (
	"bytes"
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
	"strings"
	"time"
)

// MalloryCA is the common name of the CA that NewMalloryCertificate makes.
const MalloryCA = "parley MITM CA (Mallory, trusted by nobody)"

// NewMalloryCertificate makes, in memory, a CA of Mallory's own and a
// certificate it signs for hosts (localhost, 127.0.0.1 and ::1 when
// empty), valid for server and client authentication, with an ECDSA P-256
// key. A member that verifies refuses it: nobody trusts that CA.
func NewMalloryCertificate(hosts []string) (tls.Certificate, error) {
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("attack: failed to make Mallory's CA key: %w", err)
	}
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: MalloryCA, Organization: []string{"parley (education only)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(0, 0, 30),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, caKey.Public(), caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("attack: failed to sign Mallory's CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("attack: failed to parse Mallory's CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("attack: failed to make Mallory's key: %w", err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: hosts[0], Organization: []string{"parley (education only)"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(0, 0, 30),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else {
			leaf.DNSNames = append(leaf.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, key.Public(), caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("attack: failed to sign Mallory's certificate: %w", err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("attack: failed to parse Mallory's certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key, Leaf: parsed}, nil
}

// certReason says why a verifying member refuses c, as far as Mallory can
// tell from her own certificate, and who signed it.
func certReason(c *tls.Certificate) (reason, issuer string) {
	if c == nil || len(c.Certificate) == 0 {
		return "unknown authority", "an unknown authority"
	}
	leaf := c.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return "unknown authority", "an unknown authority"
		}
	}
	issuer = leaf.Issuer.CommonName
	switch {
	case time.Now().After(leaf.NotAfter):
		return "expired", issuer
	case bytes.Equal(leaf.RawIssuer, leaf.RawSubject) && leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil:
		return "self-signed", "nobody (it is self-signed)"
	}
	return "unknown authority", issuer
}

// receivedAlert returns the text of the TLS alert the peer sent, such as
// "bad certificate". crypto/tls reports a received alert only as a
// *net.OpError with Op "remote error".
func receivedAlert(err error) (string, bool) {
	oe, ok := errors.AsType[*net.OpError](err)
	if !ok || oe.Op != "remote error" || oe.Err == nil {
		return "", false
	}
	return strings.TrimPrefix(oe.Err.Error(), "tls: "), true
}
