package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/parley-edu/parley/certs"
	"github.com/parley-edu/parley/schemes"
)

// tlsFlagNames are the flags that only the tls and mtls schemes use.
var tlsFlagNames = []string{"cert", "key", "ca", "tls-version", "keylog", "insecure-skip-verify", "sigkey", "signing-secret"}

// tlsFlags are the tls and mtls schemes' flags, for serve (server true) or
// join. Defaults come from <home>/certs, as 'parley certs' writes it.
func tlsFlags(server bool) []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "cert", Usage: "tls/mtls: certificate file (default: <home>/certs/server.crt for serve, NAME.crt for an mtls join)"},
		&cli.StringFlag{Name: "key", Usage: "tls/mtls: private key file of --cert (default: beside the certificate)"},
		&cli.StringFlag{Name: "ca", Usage: "tls/mtls: CA certificate to trust (default: <home>/certs/ca.crt)"},
		&cli.StringFlag{Name: "tls-version", Value: "1.3", Usage: "tls/mtls: highest TLS version, 1.2 or 1.3 (1.2 shows the certificate on the wire)"},
		&cli.StringFlag{Name: "keylog", EnvVars: []string{"SSLKEYLOGFILE"}, Usage: "tls/mtls: append TLS secrets to FILE in NSS key log format, for Wireshark and 'parley capture read'"},
	}
	if server {
		return append(flags,
			&cli.StringFlag{Name: "signing-secret", Usage: "mtls: the room signing secret (default: <home>/certs/signing.secret)"})
	}
	return append(flags,
		&cli.BoolFlag{Name: "insecure-skip-verify", Usage: "tls/mtls: do NOT verify the server's certificate (INSECURE: reproduces the original projects' mistake)"},
		&cli.StringFlag{Name: "sigkey", Usage: "mtls: your signing key (default: <home>/certs/NAME.sigkey)"})
}

// tlsConfig fills the tls and mtls part of cfg from the flags. It loads
// certificates and keys only when --scheme is tls or mtls, and refuses TLS
// flags given with another scheme. serverAddr is the address join dials,
// whose host the client verifies the certificate against.
func tlsConfig(c *cli.Context, server bool, serverAddr string, cfg *schemes.Config) error {
	scheme := c.String("scheme")
	if scheme != "tls" && scheme != "mtls" {
		for _, f := range tlsFlagNames {
			// --keylog may come from SSLKEYLOGFILE, which is set for every
			// program; only the flag itself is a mistake.
			if c.IsSet(f) && (f != "keylog" || c.String(f) != os.Getenv("SSLKEYLOGFILE")) {
				return misuse(fmt.Sprintf("--%s only applies to --scheme tls or mtls, not %s", f, scheme),
					"add --scheme tls or --scheme mtls, or drop --"+f)
			}
		}
		return nil
	}
	home, err := homeDir(c)
	if err != nil {
		return fail(err)
	}
	dir := filepath.Join(home, "certs")

	switch v := c.String("tls-version"); v {
	case "1.3":
		cfg.TLSVersion = tls.VersionTLS13
	case "1.2":
		cfg.TLSVersion = tls.VersionTLS12
	default:
		return misuse(fmt.Sprintf("--tls-version %q is not 1.2 or 1.3", v))
	}
	if path := c.String("keylog"); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fail(fmt.Errorf("cannot open the key log %s: %w", path, err), "check --keylog (or SSLKEYLOGFILE)")
		}
		// The file stays open for the life of the process.
		cfg.KeyLog = f
		fmt.Fprintf(c.App.ErrWriter, "parley: warning: writing TLS secrets to %s: whoever has this file can decrypt these sessions\n", path)
	}
	if server {
		return serverTLS(c, dir, scheme, cfg)
	}
	return clientTLS(c, dir, scheme, serverAddr, cfg)
}

func serverTLS(c *cli.Context, dir, scheme string, cfg *schemes.Config) error {
	certPath := flagOr(c, "cert", filepath.Join(dir, certs.ServerCertFile))
	keyPath := flagOr(c, "key", keyBeside(certPath))
	pair, err := loadPair(certPath, keyPath, "parley certs init && parley certs issue server --host localhost,127.0.0.1,::1")
	if err != nil {
		return err
	}
	cfg.Certificates = []tls.Certificate{pair}
	if scheme != "mtls" {
		return nil
	}
	if cfg.RootCAs, err = loadCA(c, dir); err != nil {
		return err
	}
	if path := c.String("signing-secret"); path != "" {
		cfg.SigningSecret, err = certs.ReadSigKey(path)
	} else {
		cfg.SigningSecret, err = certs.ReadSigningSecret(dir)
	}
	if err != nil {
		return fail(err, "run 'parley certs init' to create the room signing secret, or point --signing-secret at it")
	}
	return nil
}

func clientTLS(c *cli.Context, dir, scheme, serverAddr string, cfg *schemes.Config) error {
	host, _, err := net.SplitHostPort(serverAddr)
	if err != nil {
		return misuse(fmt.Sprintf("--server %q is not HOST:PORT", serverAddr))
	}
	cfg.ServerName = host
	if c.Bool("insecure-skip-verify") {
		cfg.InsecureSkipVerify = true
		fmt.Fprintln(c.App.ErrWriter, "parley: warning: --insecure-skip-verify is INSECURE: the server's certificate is not checked, so anyone in the middle can read and change everything, exactly the original projects' mistake")
	}
	if !cfg.InsecureSkipVerify || c.IsSet("ca") {
		if cfg.RootCAs, err = loadCA(c, dir); err != nil {
			return err
		}
	}
	if scheme != "mtls" {
		return nil
	}
	name := c.String("name")
	if name == "" && !c.IsSet("cert") {
		return misuse("--scheme mtls needs --name NAME (to find NAME.crt, NAME.key and NAME.sigkey) or --cert, --key and --sigkey",
			"run 'parley certs issue client NAME' once, then join with --name NAME")
	}
	issue := fmt.Sprintf("run 'parley certs issue client %s'", nameOr(name))
	certPath := flagOr(c, "cert", filepath.Join(dir, name+".crt"))
	keyPath := flagOr(c, "key", keyBeside(certPath))
	sigPath := flagOr(c, "sigkey", filepath.Join(filepath.Dir(certPath), trimExt(filepath.Base(certPath))+".sigkey"))
	if _, err := os.Stat(certPath); errors.Is(err, fs.ErrNotExist) {
		return fail(fmt.Errorf("the server requires a client certificate, and %s does not exist", certPath),
			issue+" (after 'parley certs init'), or give --cert and --key")
	}
	pair, err := loadPair(certPath, keyPath, issue)
	if err != nil {
		return err
	}
	cfg.Certificates = []tls.Certificate{pair}
	if cfg.SigKey, err = certs.ReadSigKey(sigPath); err != nil {
		return fail(fmt.Errorf("mtls needs your signing key: %w", err), issue+", or give --sigkey")
	}
	return nil
}

func loadCA(c *cli.Context, dir string) (*x509.CertPool, error) {
	path := flagOr(c, "ca", filepath.Join(dir, certs.CACertFile))
	pool, err := certs.LoadPool(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fail(fmt.Errorf("no CA certificate at %s", path), "run 'parley certs init' to create the lab CA, or point --ca at the CA to trust")
	}
	if err != nil {
		return nil, fail(err, "check --ca")
	}
	return pool, nil
}

func loadPair(certPath, keyPath, how string) (tls.Certificate, error) {
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			return tls.Certificate{}, fail(fmt.Errorf("%s does not exist", p), how+", or give --cert and --key")
		}
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, fail(fmt.Errorf("cannot load the certificate %s with its key %s: %w", certPath, keyPath, err),
			"check that --key belongs to --cert; 'parley certs inspect FILE' explains a certificate")
	}
	return pair, nil
}

func flagOr(c *cli.Context, flag, def string) string {
	if v := c.String(flag); v != "" {
		return v
	}
	return def
}

// keyBeside is the key file that goes with a certificate file: the same
// name with .key for .crt.
func keyBeside(certPath string) string {
	return filepath.Join(filepath.Dir(certPath), trimExt(filepath.Base(certPath))+".key")
}

func trimExt(name string) string { return name[:len(name)-len(filepath.Ext(name))] }

func nameOr(name string) string {
	if name == "" {
		return "NAME"
	}
	return name
}
