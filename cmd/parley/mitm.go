package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/parley-edu/parley/capture"
	"github.com/parley-edu/parley/labs/attack"
	"github.com/parley-edu/parley/schemes"
)

// replaceList collects repeated --replace OLD=NEW values. It is a
// cli.Generic rather than a string slice so that commas inside the text are
// kept (urfave/cli splits slice values on commas).
type replaceList struct{ list []attack.Replacement }

func (r *replaceList) Set(s string) error {
	rep, err := attack.ParseReplacement(s)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "attack: "))
	}
	r.list = append(r.list, rep)
	return nil
}

func (r *replaceList) String() string {
	var parts []string
	for _, x := range r.list {
		parts = append(parts, x.Old+"="+x.New)
	}
	return strings.Join(parts, " ")
}

func mitmCommand() *cli.Command {
	return &cli.Command{
		Name:      "mitm",
		Usage:     "put Mallory between the members and a room: read, rewrite, flip, replay, drop or inject what the scheme lets her",
		UsageText: "parley mitm --scheme S --listen A --upstream B [--replace OLD=NEW] [--flip OFFSET:MASK] [--replay N] [--drop N] [--inject TEXT]",
		Description: "Members join the relay's address (--listen) instead of the room's (--upstream); no root\n" +
			"or ARP tricks. Every event prints on stdout as one line to read aloud (--json for scripts).\n" +
			"Record numbers count what the member sends, from 1 (its name); in aes the key\n" +
			"confirmation is record 0. --flip applies to every record from 2 on, or to record N\n" +
			"with OFFSET:MASK@N; offsets count from the first byte after the length field (for\n" +
			"CBC, offset 0 is the IV's first byte).\n" +
			"Example:\n" +
			"  parley serve --scheme xor &\n" +
			"  parley mitm --scheme xor --listen 127.0.0.1:5051 --upstream 127.0.0.1:5050 --replace 5=9\n" +
			"  parley join --scheme xor --server 127.0.0.1:5051 --name alice",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "scheme", Value: "plain", Usage: "the room's scheme: " + strings.Join(schemes.Names(), ", ")},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:5051", Usage: "address members connect to"},
			&cli.StringFlag{Name: "upstream", Value: "127.0.0.1:5050", Usage: "the room's address"},
			&cli.BoolFlag{Name: "show", Value: true, Usage: "print every message Mallory can read, per direction (always on)"},
			&cli.GenericFlag{Name: "replace", Value: &replaceList{}, Usage: "rewrite OLD=NEW in message text, both directions (repeatable)"},
			&cli.StringFlag{Name: "flip", Usage: "XOR MASK (decimal or 0x hex) into byte OFFSET of each client record body: OFFSET:MASK or OFFSET:MASK@N"},
			&cli.IntFlag{Name: "replay", Usage: "send client record N a second time, right behind the original"},
			&cli.IntFlag{Name: "drop", Usage: "swallow client record N"},
			&cli.StringFlag{Name: "inject", Usage: "send TEXT to the room as if from the member, right after its name"},
			&cli.StringFlag{Name: "cert", Usage: "tls/mtls: Mallory's certificate (e.g. from 'parley certs bad rogue-ca mallory'; default: one she makes on start, signed by a CA of her own)"},
			&cli.StringFlag{Name: "key", Usage: "tls/mtls: the private key of --cert (default: beside it, .key for .crt)"},
			&cli.BoolFlag{Name: "xor-brute-force", Usage: "xor: ignore the key byte and try all 256 keys, as if Mallory had joined late"},
			&cli.BoolFlag{Name: "json", Usage: "print events as JSON, one object per line"},
			&cli.StringFlag{Name: "write", Aliases: []string{"w"}, Usage: "record both legs of every connection to FILE (pcapng) when the relay stops"},
			&cli.DurationFlag{Name: "handshake-timeout", Value: attack.DefaultHandshakeTimeout, Usage: "time allowed to reach the room and for each side's handshake"},
		},
		Action: mitmAction,
	}
}

func mitmAction(c *cli.Context) error {
	if c.Args().Present() {
		return misuse(fmt.Sprintf("mitm takes no arguments, got %q", c.Args().Slice()), "run 'parley mitm --help'")
	}
	cfg := attack.Config{
		Scheme:           c.String("scheme"),
		Listen:           c.String("listen"),
		Upstream:         c.String("upstream"),
		Replace:          c.Generic("replace").(*replaceList).list,
		Replay:           c.Int("replay"),
		Drop:             c.Int("drop"),
		Inject:           c.String("inject"),
		XORBruteForce:    c.Bool("xor-brute-force"),
		HandshakeTimeout: c.Duration("handshake-timeout"),
		Logger:           newLogger(c),
	}
	if _, err := schemes.Describe(cfg.Scheme); err != nil {
		return misuse(fmt.Sprintf("--scheme %q is not a scheme", cfg.Scheme), "choose one of: "+strings.Join(schemes.Names(), ", "))
	}
	for _, f := range []string{"listen", "upstream"} {
		if err := checkAddr(f, c.String(f)); err != nil {
			return err
		}
	}
	if s := c.String("flip"); s != "" {
		f, err := attack.ParseFlip(s)
		if err != nil {
			return misuse(strings.TrimPrefix(err.Error(), "attack: "), "write it as OFFSET:MASK or OFFSET:MASK@N, e.g. --flip 0:0x20")
		}
		cfg.Flip = &f
	}
	if cfg.Replay < 0 || cfg.Drop < 0 {
		return misuse("--replay and --drop take a record number from 1 (the member's name is record 1)")
	}
	if cfg.HandshakeTimeout <= 0 {
		return misuse("--handshake-timeout must be positive, e.g. 10s")
	}
	if cfg.XORBruteForce && cfg.Scheme != "xor" {
		return misuse(fmt.Sprintf("--xor-brute-force only applies to --scheme xor, not %s", cfg.Scheme))
	}
	if c.IsSet("cert") || c.IsSet("key") {
		if cfg.Scheme != "tls" && cfg.Scheme != "mtls" {
			return misuse(fmt.Sprintf("--cert and --key only apply to --scheme tls or mtls, not %s", cfg.Scheme))
		}
		pair, err := loadMalloryCert(c.String("cert"), c.String("key"))
		if err != nil {
			return err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	out := c.String("write")
	if c.IsSet("write") {
		if err := checkOutputFile("write", out); err != nil {
			return err
		}
		cfg.Recorder = capture.NewRecorder()
		defer cfg.Recorder.Close()
	}
	stdout, stderr := c.App.Writer, c.App.ErrWriter
	cfg.OnEvent = printEvent(stdout, c.Bool("json"))

	if _, err := cfg.Check(); err != nil {
		return misuse(strings.TrimPrefix(err.Error(), "attack: "), "run 'parley mitm --help'")
	}
	r, err := attack.NewRelay(cfg)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fail(fmt.Errorf("cannot listen on %s: the address is already in use", cfg.Listen), "choose another with --listen")
		}
		return fail(err)
	}
	for _, n := range r.Notes() {
		fmt.Fprintf(stderr, "parley: warning: %s\n", n)
	}
	if p, _ := schemes.Describe(cfg.Scheme); p.Insecure {
		fmt.Fprintf(stderr, "parley: warning: %s\n", p.Warning)
	}
	fmt.Fprintf(stderr, "parley: mitm (scheme %s) listening on %s\n", cfg.Scheme, r.Addr())
	fmt.Fprintf(stderr, "parley: relaying to the room at %s; members join with 'parley join --scheme %s --server %s'\n", cfg.Upstream, cfg.Scheme, r.Addr())
	if crt := r.Certificate(); crt != nil {
		if leaf, err := x509.ParseCertificate(crt.Certificate[0]); err == nil {
			fmt.Fprintf(stderr, "parley: Mallory presents a certificate for %s signed by %q: members that verify will refuse it\n", leaf.Subject.CommonName, leaf.Issuer.CommonName)
		}
	}

	ctx, stop := signal.NotifyContext(c.Context, syscallInterrupts()...)
	defer stop()
	serveErr := r.Serve(ctx)
	stop()
	if cfg.Recorder != nil {
		if err := cfg.Recorder.WriteFile(out); err != nil {
			return fail(fmt.Errorf("cannot write the capture: %w", err), "check -w FILE")
		}
		fmt.Fprintf(stderr, "parley: wrote %d packets (both legs of every connection) to %s; read it with 'parley capture read %s'\n", cfg.Recorder.Packets(), out, out)
	}
	if serveErr != nil {
		return fail(serveErr)
	}
	fmt.Fprintln(stderr, "parley: mitm stopped")
	return nil
}

// printEvent prints each event on w as one plain line, or as JSON.
func printEvent(w io.Writer, asJSON bool) func(attack.Event) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return func(e attack.Event) {
		if asJSON {
			enc.Encode(e)
			return
		}
		fmt.Fprintln(w, e.String())
	}
}

// loadMalloryCert loads --cert and --key; the key defaults to the file
// beside the certificate.
func loadMalloryCert(certPath, keyPath string) (tls.Certificate, error) {
	if certPath == "" {
		return tls.Certificate{}, misuse("--key needs --cert", "give Mallory's certificate with --cert FILE")
	}
	if keyPath == "" {
		keyPath = strings.TrimSuffix(certPath, ".crt") + ".key"
	}
	for _, p := range []struct{ flag, path string }{{"cert", certPath}, {"key", keyPath}} {
		if err := checkInputFile(p.flag, p.path, "make one with 'parley certs bad rogue-ca mallory'"); err != nil {
			return tls.Certificate{}, err
		}
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, fail(fmt.Errorf("cannot load Mallory's certificate %s with key %s: %w", certPath, keyPath, err))
	}
	return pair, nil
}
