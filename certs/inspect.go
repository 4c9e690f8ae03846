package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"strings"
	"time"
)

// Info is what Inspect learned about a certificate, ready to be printed.
type Info struct {
	Subject    string
	CommonName string
	DNSNames   []string
	IPs        []string
	Issuer     string
	NotBefore  time.Time
	NotAfter   time.Time
	// Expired and NotYetValid are judged at the time Inspect was given.
	Expired     bool
	NotYetValid bool
	IsCA        bool
	SelfSigned  bool
	// KeyType is like "ECDSA P-256" or "RSA 2048".
	KeyType string
	// EKUs are the extended key usages in words, such as "server
	// authentication".
	EKUs []string
	// SHA256 is the certificate's fingerprint: SHA-256 over its DER bytes,
	// as colon-separated upper-case hex (the form browsers and openssl
	// x509 -fingerprint -sha256 print).
	SHA256 string
	// SignedByLabCA is true when the lab CA's key signed the certificate
	// (or it is the lab CA). LabCAChecked is false when no CA was given.
	SignedByLabCA bool
	LabCAChecked  bool
}

// Inspect explains cert at time now; ca is the lab CA certificate, or nil
// when there is none.
func Inspect(cert *x509.Certificate, ca *x509.Certificate, now time.Time) *Info {
	in := &Info{
		Subject:     cert.Subject.String(),
		CommonName:  cert.Subject.CommonName,
		DNSNames:    cert.DNSNames,
		Issuer:      cert.Issuer.String(),
		NotBefore:   cert.NotBefore,
		NotAfter:    cert.NotAfter,
		Expired:     now.After(cert.NotAfter),
		NotYetValid: now.Before(cert.NotBefore),
		IsCA:        cert.IsCA,
		KeyType:     keyType(cert),
		SHA256:      Fingerprint(cert),
	}
	for _, ip := range cert.IPAddresses {
		in.IPs = append(in.IPs, ip.String())
	}
	for _, u := range cert.ExtKeyUsage {
		in.EKUs = append(in.EKUs, ekuName(u))
	}
	in.SelfSigned = IsSelfSigned(cert)
	if ca != nil {
		in.LabCAChecked = true
		in.SignedByLabCA = cert.Equal(ca) || cert.CheckSignatureFrom(ca) == nil
	}
	return in
}

// IsSelfSigned reports whether cert is signed by its own key. Unlike
// CheckSignatureFrom it also works for a leaf that is not a CA.
func IsSelfSigned(cert *x509.Certificate) bool {
	return bytes.Equal(cert.RawSubject, cert.RawIssuer) &&
		cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) == nil
}

// Fingerprint returns SHA-256 over the certificate's DER bytes as
// colon-separated upper-case hex.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		fmt.Fprintf(&b, "%02X", c)
	}
	return b.String()
}

func keyType(cert *x509.Certificate) string {
	switch k := cert.PublicKey.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return cert.PublicKeyAlgorithm.String()
}

func ekuName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "server authentication"
	case x509.ExtKeyUsageClientAuth:
		return "client authentication"
	case x509.ExtKeyUsageAny:
		return "any"
	case x509.ExtKeyUsageCodeSigning:
		return "code signing"
	case x509.ExtKeyUsageEmailProtection:
		return "email protection"
	}
	return fmt.Sprintf("usage %d", int(u))
}
