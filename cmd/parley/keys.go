package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/parley-edu/parley/schemes"
)

// keysCommand is 'parley keys': pre-shared keys for aes-cbc-hmac and aes-cbc.
func keysCommand() *cli.Command {
	return &cli.Command{
		Name:  "keys",
		Usage: "make keys: pre-shared keys for aes-cbc-hmac and aes-cbc, history keys for serve --history",
		Subcommands: []*cli.Command{{
			Name:  "gen",
			Usage: "write a new random 32-byte pre-shared key (base64, file mode 0600)",
			Description: "As a pre-shared key: give the same file to 'parley serve --psk FILE' and to every\n" +
				"'parley join --psk FILE'. Anyone who holds it can read the room.\n" +
				"As a history key: 'parley serve --history --history-key FILE' seals the stored\n" +
				"messages with it. Without it the history cannot be read.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "key file to write"},
				&cli.BoolFlag{Name: "force", Usage: "overwrite an existing file"},
			},
			Action: keysGen,
		}},
	}
}

func keysGen(c *cli.Context) error {
	if c.NArg() > 0 {
		return misuse(fmt.Sprintf("keys gen takes no arguments, got %q", c.Args().First()), "name the file with --out FILE")
	}
	path := c.String("out")
	if err := checkOutputFile("out", path); err != nil {
		return err
	}
	err := writeNewKey(path, c.Bool("force"))
	if errors.Is(err, fs.ErrExist) {
		return fail(fmt.Errorf("%s already exists; not overwriting a key that others may share", path),
			"add --force to replace it (everyone then needs the new file), or choose another --out")
	}
	if err != nil {
		return fail(err)
	}
	abs, _ := filepath.Abs(path)
	fmt.Fprintf(c.App.ErrWriter, "parley: wrote a new pre-shared key to %s (mode 0600)\n", abs)
	fmt.Fprintf(c.App.ErrWriter, "parley: next: parley serve --scheme aes-cbc-hmac --psk %s, and give the same file to every 'parley join'\n", path)
	return nil
}

// writeNewKey writes a new random 32-byte key, base64, to path with mode
// 0600. Without force, an existing file is an error wrapping fs.ErrExist.
func writeNewKey(path string, force bool) error {
	key, err := schemes.GeneratePSK()
	if err != nil {
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return fmt.Errorf("cannot create %s: %w", path, err)
	}
	// An existing file keeps its mode under O_TRUNC: make it private.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("cannot make %s private (mode 0600): %w", path, err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

// recordFlags are the flags of the xor, aes-cbc-hmac and aes-cbc schemes,
// shared by serve and join.
func recordFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "psk", Usage: "pre-shared key file for aes-cbc-hmac and aes-cbc (make one with 'parley keys gen')"},
		&cli.StringFlag{Name: "passphrase", Usage: "derive the pre-shared key from this passphrase instead (Argon2id; only as strong as it is long)"},
		&cli.IntFlag{Name: "xor-key", Usage: "serve: fix the xor key, 0-255 (default: random per run)"},
		&cli.BoolFlag{Name: "padding-oracle", Usage: "serve --scheme aes-cbc: INSECURE, report bad padding distinctly, for the padding-oracle lab"},
	}
}

// passphraseMinLen is the length under which a passphrase gets a stronger
// warning: it falls to a dictionary quickly, Argon2id or not.
const passphraseMinLen = 20

// recordConfig fills the record schemes' part of cfg from the flags. It
// refuses flags that do nothing for the chosen scheme or command, so that a
// mistake does not pass silently.
func recordConfig(c *cli.Context, cfg *schemes.Config) error {
	scheme := c.String("scheme")
	serve := c.Command != nil && c.Command.Name == "serve"
	aes := scheme == "aes-cbc-hmac" || scheme == "aes-cbc"

	if c.IsSet("xor-key") {
		switch {
		case scheme != "xor":
			return misuse(fmt.Sprintf("--xor-key is for --scheme xor, not %s", scheme))
		case !serve:
			return misuse("--xor-key is for serve: an xor client learns the key from the server's first byte")
		case c.Int("xor-key") < 0 || c.Int("xor-key") > 255:
			return misuse(fmt.Sprintf("--xor-key %d is out of range", c.Int("xor-key")), "an xor key is one byte: 0 to 255")
		}
		cfg.XORKey, cfg.XORKeySet = byte(c.Int("xor-key")), true
	}

	if c.Bool("padding-oracle") {
		switch {
		case scheme != "aes-cbc":
			return misuse(fmt.Sprintf("--padding-oracle is for --scheme aes-cbc, not %s", scheme),
				"aes-cbc-hmac checks the tag before the padding, so it has no padding oracle to switch on")
		case !serve:
			return misuse("--padding-oracle is for serve: the server is the oracle")
		}
		cfg.PaddingOracle = true
		fmt.Fprintln(c.App.ErrWriter, "parley: warning: --padding-oracle is INSECURE: the server tells bad padding apart from other errors, which lets anyone on the path decrypt messages; use it only for the padding-oracle lab.")
	}

	psk, pass := c.String("psk"), c.String("passphrase")
	if !aes {
		for _, f := range []string{"psk", "passphrase"} {
			if c.IsSet(f) {
				return misuse(fmt.Sprintf("--%s is for --scheme aes-cbc-hmac or aes-cbc, not %s", f, scheme))
			}
		}
		return nil
	}
	switch {
	case c.IsSet("psk") && c.IsSet("passphrase"):
		return misuse("--psk and --passphrase both give the pre-shared key; use one")
	case c.IsSet("psk"):
		data, err := os.ReadFile(psk)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fail(fmt.Errorf("--psk: %s does not exist", psk),
					fmt.Sprintf("create it with 'parley keys gen --out %s', then give the same file to serve and join", psk))
			}
			return fail(fmt.Errorf("--psk: cannot read %s: %w", psk, err),
				"check the path and its permissions, or make a new key with 'parley keys gen --out FILE'")
		}
		key, err := schemes.ParsePSK(data)
		if err != nil {
			return fail(fmt.Errorf("--psk %s: %w", psk, err),
				fmt.Sprintf("'parley keys gen --out %s --force' writes a valid key file (everyone then needs the new file)", psk))
		}
		if st, err := os.Stat(psk); err == nil && st.Mode().Perm()&0o077 != 0 {
			fmt.Fprintf(c.App.ErrWriter, "parley: warning: %s is readable by other users (mode %04o); anyone who can read it can read the room: chmod 600 %s\n", psk, st.Mode().Perm(), psk)
		}
		cfg.PSK = key
	case c.IsSet("passphrase"):
		if pass == "" {
			return misuse("--passphrase is empty", "give a long passphrase, or a key file with --psk (see 'parley keys gen')")
		}
		if n := len([]rune(pass)); n < passphraseMinLen {
			fmt.Fprintf(c.App.ErrWriter, "parley: warning: a %d-character passphrase falls to a dictionary attack on a recording; use %d or more characters, or a key file from 'parley keys gen'.\n", n, passphraseMinLen)
		} else {
			fmt.Fprintln(c.App.ErrWriter, "parley: warning: a passphrase is only as strong as it is long; a key file from 'parley keys gen' is stronger.")
		}
		cfg.PSK = schemes.PassphraseKey(pass)
	default:
		return misuse(fmt.Sprintf("--scheme %s needs a pre-shared key", scheme),
			"make one with 'parley keys gen --out room.psk' and pass --psk room.psk to serve and to every join",
			"or pass the same --passphrase to serve and to every join")
	}
	return nil
}
