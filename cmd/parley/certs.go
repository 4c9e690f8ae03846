package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/parley-edu/parley/certs"
)

func certsCommand() *cli.Command {
	keyFlags := []cli.Flag{
		&cli.BoolFlag{Name: "rsa", Usage: "RSA-2048 keys instead of ECDSA P-256"},
		&cli.IntFlag{Name: "days", Usage: "validity in days (default: 3650 for the CA, 825 for certificates)"},
	}
	hostFlag := &cli.StringFlag{Name: "host", Value: strings.Join(certs.DefaultHosts, ","), Usage: "comma-separated host names and IP addresses the certificate covers"}
	kinds := make([]string, len(certs.BadKinds))
	for i, k := range certs.BadKinds {
		kinds[i] = string(k)
	}
	return &cli.Command{
		Name:  "certs",
		Usage: "the lab certificate authority: init, issue, inspect, and deliberately bad certificates",
		Description: "Files live in <home>/certs (see --home). A typical start:\n" +
			"  parley certs init\n" +
			"  parley certs issue server --host localhost,127.0.0.1,::1\n" +
			"  parley certs issue client alice",
		Subcommands: []*cli.Command{
			{
				Name:      "init",
				Usage:     "create (or find) the lab CA and the mtls room signing secret",
				Flags:     keyFlags,
				Action:    certsInit,
				ArgsUsage: " ",
			},
			{
				Name:  "issue",
				Usage: "issue a server or client certificate signed by the lab CA",
				Subcommands: []*cli.Command{
					{
						Name:      "server",
						Usage:     "issue server.crt and server.key",
						Flags:     append([]cli.Flag{hostFlag}, keyFlags...),
						Action:    certsIssueServer,
						ArgsUsage: " ",
					},
					{
						Name:      "client",
						Usage:     "issue NAME.crt, NAME.key and NAME.sigkey (the mtls signing key)",
						Flags:     keyFlags,
						Action:    certsIssueClient,
						ArgsUsage: "NAME",
					},
				},
			},
			{
				Name:      "inspect",
				Usage:     "explain a certificate in words",
				Action:    certsInspect,
				ArgsUsage: "FILE",
			},
			{
				Name:        "bad",
				Usage:       "make a deliberately broken certificate for a lab: " + strings.Join(kinds, ", "),
				Description: badDescription(),
				Flags:       append([]cli.Flag{hostFlag}, keyFlags...),
				Action:      certsBad,
				ArgsUsage:   "KIND NAME",
			},
		},
	}
}

func badDescription() string {
	var b strings.Builder
	b.WriteString("Each writes NAME.crt and NAME.key beside the lab CA:\n")
	for _, k := range certs.BadKinds {
		fmt.Fprintf(&b, "  %-15s %s\n", k, k.Explain())
	}
	return b.String()
}

func certsDir(c *cli.Context) (string, error) {
	home, err := homeDir(c)
	if err != nil {
		return "", fail(err)
	}
	return filepath.Join(home, "certs"), nil
}

func keyOptions(c *cli.Context) (certs.Options, error) {
	if c.Int("days") < 0 {
		return certs.Options{}, misuse(fmt.Sprintf("--days %d is negative", c.Int("days")))
	}
	return certs.Options{RSA: c.Bool("rsa"), Days: c.Int("days")}, nil
}

func noArgs(c *cli.Context) error {
	if c.Args().Present() {
		return misuse(fmt.Sprintf("%s takes no arguments, got %q", c.Command.HelpName, c.Args().Slice()))
	}
	return nil
}

// certsError turns a certs error into a CLI error with the next step.
func certsError(err error) error {
	switch {
	case errors.Is(err, certs.ErrNoCA):
		return fail(err, "run 'parley certs init' first")
	case errors.Is(err, certs.ErrNoSigningSecret):
		return fail(err, "run 'parley certs init' to create it (the CA is kept)")
	case errors.Is(err, certs.ErrBadName):
		return misuse(err.Error(), "a name is 1-32 letters, digits, '_', '-' or '.'")
	}
	return fail(err)
}

func printFiles(w io.Writer, files []certs.File) {
	for _, f := range files {
		line := fmt.Sprintf("  %s  %s, mode %04o", f.Path, f.What, f.Mode)
		if !f.Expires.IsZero() {
			line += ", expires " + f.Expires.UTC().Format("2006-01-02")
		}
		fmt.Fprintln(w, line)
	}
}

func certsInit(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	o, err := keyOptions(c)
	if err != nil {
		return err
	}
	dir, err := certsDir(c)
	if err != nil {
		return err
	}
	res, err := certs.Init(dir, o)
	if err != nil {
		return certsError(err)
	}
	w := c.App.Writer
	if res.CACreated {
		fmt.Fprintf(w, "Created a new lab CA in %s\n", dir)
	} else {
		fmt.Fprintf(w, "Found the existing lab CA in %s (kept as it is)\n", dir)
	}
	printFiles(w, res.Files[:2])
	if res.SecretCreated {
		fmt.Fprintln(w, "Created the mtls room signing secret:")
	} else {
		fmt.Fprintln(w, "Found the existing mtls room signing secret (kept as it is):")
	}
	printFiles(w, res.Files[2:])
	if (c.IsSet("rsa") || c.IsSet("days")) && !res.CACreated {
		fmt.Fprintln(c.App.ErrWriter, "parley: warning: --rsa and --days apply only to a new CA; the existing one was kept")
	}
	fmt.Fprintln(w, "The lab CA is ready; next: parley certs issue server --host localhost,127.0.0.1,::1")
	return nil
}

func certsIssueServer(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	o, err := keyOptions(c)
	if err != nil {
		return err
	}
	dir, err := certsDir(c)
	if err != nil {
		return err
	}
	hosts := splitHosts(c.String("host"))
	if len(hosts) == 0 {
		return misuse("--host names no host", "e.g. --host localhost,127.0.0.1,::1")
	}
	files, err := certs.IssueServer(dir, hosts, o)
	if err != nil {
		return certsError(err)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "Issued a server certificate for %s, signed by the lab CA:\n", strings.Join(hosts, ", "))
	printFiles(w, files)
	fmt.Fprintln(w, "Next: parley serve --scheme tls (or mtls); it uses these files by default")
	return nil
}

func certsIssueClient(c *cli.Context) error {
	if c.NArg() != 1 {
		return misuse("issue client takes exactly one NAME", "e.g. parley certs issue client alice")
	}
	name := c.Args().First()
	o, err := keyOptions(c)
	if err != nil {
		return err
	}
	dir, err := certsDir(c)
	if err != nil {
		return err
	}
	files, err := certs.IssueClient(dir, name, o)
	if err != nil {
		return certsError(err)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "Issued a client certificate for %s (CN=%s, client authentication), signed by the lab CA:\n", name, name)
	printFiles(w, files)
	fmt.Fprintf(w, "Next: parley join --scheme mtls --name %s; it uses these files by default\n", name)
	return nil
}

func splitHosts(s string) []string {
	var hosts []string
	for _, h := range strings.Split(s, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

func certsInspect(c *cli.Context) error {
	if c.NArg() != 1 {
		return misuse("inspect takes exactly one FILE", "e.g. parley certs inspect ~/.parley/certs/server.crt")
	}
	path := c.Args().First()
	data, err := os.ReadFile(path)
	if err != nil {
		return fail(fmt.Errorf("cannot read %s: %w", path, err))
	}
	cert, err := certs.ParseCertificateFile(data)
	if err != nil {
		hint := "give a certificate file (.crt), not a key"
		return fail(fmt.Errorf("%s: %w", path, err), hint)
	}
	dir, err := certsDir(c)
	if err != nil {
		return err
	}
	var caCert *x509.Certificate
	caPath := filepath.Join(dir, certs.CACertFile)
	if caData, err := os.ReadFile(caPath); err == nil {
		caCert, _ = certs.ParseCertificateFile(caData)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fail(fmt.Errorf("cannot read the lab CA %s: %w", caPath, err))
	}
	now := time.Now()
	in := certs.Inspect(cert, caCert, now)

	w := c.App.Writer
	const date = "2006-01-02 15:04 UTC"
	row := func(k, v string) { fmt.Fprintf(w, "%-13s %s\n", k+":", v) }
	row("file", path)
	row("subject", in.Subject)
	names := append(append([]string{}, in.DNSNames...), in.IPs...)
	if len(names) == 0 {
		row("names (SANs)", "none")
	} else {
		row("names (SANs)", strings.Join(names, ", "))
	}
	row("issuer", in.Issuer)
	validity := fmt.Sprintf("%s to %s", in.NotBefore.UTC().Format(date), in.NotAfter.UTC().Format(date))
	switch {
	case in.Expired:
		validity += " (EXPIRED on " + in.NotAfter.UTC().Format(date) + ")"
	case in.NotYetValid:
		validity += " (NOT YET VALID)"
	default:
		validity += fmt.Sprintf(" (valid now, %d days left)", int(in.NotAfter.Sub(now).Hours()/24))
	}
	row("validity", validity)
	row("key", in.KeyType)
	if len(in.EKUs) == 0 {
		row("usages", "any (no extended key usage)")
	} else {
		row("usages", strings.Join(in.EKUs, ", "))
	}
	if in.IsCA {
		row("CA", "yes: it can sign certificates")
	} else {
		row("CA", "no")
	}
	row("SHA-256", in.SHA256)
	switch {
	case !in.LabCAChecked:
		row("lab CA", "none in "+dir+" to compare with")
	case in.SignedByLabCA:
		row("lab CA", "signed by the lab CA ("+caPath+")")
	case in.SelfSigned:
		row("lab CA", "NOT signed by the lab CA: it is self-signed")
	default:
		row("lab CA", "NOT signed by the lab CA: its issuer is "+in.Issuer)
	}
	fmt.Fprintln(w, inspectVerdict(in))
	return nil
}

// inspectVerdict is inspect's last line: what a parley peer would make of
// the certificate.
func inspectVerdict(in *certs.Info) string {
	const date = "2006-01-02"
	switch {
	case in.Expired:
		return "Verdict: refused everywhere: it expired on " + in.NotAfter.UTC().Format(date) + "."
	case in.NotYetValid:
		return "Verdict: refused until " + in.NotBefore.UTC().Format(date) + ": it is not valid yet."
	case in.IsCA && in.SignedByLabCA:
		return "Verdict: this is the lab CA; parley trusts what it signs."
	case in.SelfSigned && !in.IsCA:
		return "Verdict: refused: it is self-signed, so no trusted authority vouches for it (a man in the middle could make one just like it)."
	case in.LabCAChecked && !in.SignedByLabCA:
		return "Verdict: refused by parley peers that trust the lab CA: another authority signed it."
	case !in.LabCAChecked:
		return "Verdict: no lab CA to check against; run 'parley certs init' to make one."
	}
	var uses []string
	for _, u := range in.EKUs {
		switch u {
		case "server authentication":
			uses = append(uses, "a tls/mtls server for "+strings.Join(append(append([]string{}, in.DNSNames...), in.IPs...), ", "))
		case "client authentication":
			uses = append(uses, "the mtls client "+in.CommonName)
		}
	}
	if len(uses) == 0 {
		return "Verdict: signed by the lab CA and valid, but with no usage parley accepts."
	}
	return "Verdict: valid and signed by the lab CA; good for " + strings.Join(uses, " and ") + "."
}

func certsBad(c *cli.Context) error {
	if c.NArg() != 2 {
		return misuse("bad takes KIND and NAME", "e.g. parley certs bad expired old-server; kinds: "+kindList())
	}
	kind, err := certs.ParseBadKind(c.Args().Get(0))
	if err != nil {
		return misuse(err.Error(), "choose one of: "+kindList())
	}
	name := c.Args().Get(1)
	o, err := keyOptions(c)
	if err != nil {
		return err
	}
	dir, err := certsDir(c)
	if err != nil {
		return err
	}
	files, err := certs.Bad(dir, kind, name, splitHosts(c.String("host")), o)
	if err != nil {
		return certsError(err)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "Made a deliberately bad certificate (%s): %s.\n", kind, kind.Explain())
	printFiles(w, files)
	crt, key := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if kind == certs.BadNoClientAuth {
		fmt.Fprintf(w, "Try it: parley join --scheme mtls --name %s --cert %s --key %s --sigkey <your NAME.sigkey>; the room should refuse it\n", name, crt, key)
		return nil
	}
	fmt.Fprintf(w, "Try it: parley serve --scheme tls --cert %s --key %s, then parley join --scheme tls; the client should refuse it\n", crt, key)
	return nil
}

func kindList() string {
	kinds := make([]string, len(certs.BadKinds))
	for i, k := range certs.BadKinds {
		kinds[i] = string(k)
	}
	return strings.Join(kinds, ", ")
}
