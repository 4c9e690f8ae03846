// Command parley is a security-education chat toolkit: one chat room over
// swappable transport schemes, a capture tool that shows what an
// eavesdropper sees, labs and an active man-in-the-middle relay.
//
// Only this package parses flags, prints to the terminal and chooses exit
// codes: 0 on success, 1 on failure, 2 on misuse.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run executes the command line args and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.Run(reorderArgs(app, args))
	if err == nil {
		return 0
	}
	return report(stderr, err)
}

// commands lists every top-level command, in the order --help shows them.
func commands() []*cli.Command {
	return []*cli.Command{
		serveCommand(),
		joinCommand(),
		demoCommand(),
		benchCommand(),
		schemesCommand(), keysCommand(), certsCommand(),
		usersCommand(),
		versionCommand(),
		captureCommand(),
		labsCommand(),
		mitmCommand(),
		completionCommand(),
	}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:  "parley",
		Usage: "a chat room over swappable transport schemes, and what an eavesdropper sees of it",
		Description: "parley runs one chat room over plain text, a one-byte XOR, AES-CBC with and without\n" +
			"a MAC, TLS and mutual TLS, and shows scheme by scheme what crosses the wire.\n" +
			"Start with: parley demo",
		Writer:               stdout,
		ErrWriter:            stderr,
		EnableBashCompletion: true,
		HideVersion:          true,
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:    "home",
				Usage:   "directory for keys, certificates and lab state",
				EnvVars: []string{"PARLEY_HOME"},
			},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log format on stderr: text or json"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "log level: debug, info, warn or error"},
		},
		Commands: commands(),
		Before: func(c *cli.Context) error {
			if f := c.String("log-format"); f != "text" && f != "json" {
				return misuse(fmt.Sprintf("--log-format %q is not text or json", f))
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
				return misuse(fmt.Sprintf("--log-level %q is not debug, info, warn or error", c.String("log-level")))
			}
			return nil
		},
		ExitErrHandler: func(*cli.Context, error) {},
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(c.App.ErrWriter, "parley: error: unknown command %q\nparley: hint: run 'parley --help' to list the commands\n", name)
			// urfave/cli v2 gives this callback no way to return an error.
			os.Exit(2)
		},
		OnUsageError: onUsageError,
	}
	setUsageErrorHandlers(app.Commands)
	return app
}

func setUsageErrorHandlers(cmds []*cli.Command) {
	for _, cmd := range cmds {
		cmd.OnUsageError = onUsageError
		setUsageErrorHandlers(cmd.Subcommands)
	}
}

func onUsageError(c *cli.Context, err error, _ bool) error {
	name := "parley"
	if c.Command != nil && c.Command.Name != "" {
		name = c.Command.HelpName
	}
	return misuse(err.Error(), fmt.Sprintf("run '%s --help' for usage", name))
}

// cliError is an error with the next steps to suggest and an exit code.
type cliError struct {
	err   error
	hints []string
	code  int
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }

// fail reports a failure (exit 1) with hints that name the next step.
func fail(err error, hints ...string) error { return &cliError{err: err, hints: hints, code: 1} }

// misuse reports a wrong command line (exit 2).
func misuse(msg string, hints ...string) error {
	return &cliError{err: errors.New(msg), hints: hints, code: 2}
}

// report prints err in parley's error style and returns the exit code.
func report(w io.Writer, err error) int {
	code := 1
	var hints []string
	var ce *cliError
	if errors.As(err, &ce) {
		code, hints = ce.code, ce.hints
	}
	var ec cli.ExitCoder
	if ce == nil && errors.As(err, &ec) {
		code = ec.ExitCode()
	}
	fmt.Fprintf(w, "parley: error: %s\n", err)
	for _, h := range hints {
		fmt.Fprintf(w, "parley: hint: %s\n", h)
	}
	return code
}

// homeDir returns the parley home directory: --home, $PARLEY_HOME, or a
// per-user default. It does not create it.
func homeDir(c *cli.Context) (string, error) {
	if h := c.String("home"); h != "" {
		return filepath.Abs(h)
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fail(fmt.Errorf("cannot find a per-user directory for the parley home: %w", err),
			"set one with --home DIR or PARLEY_HOME")
	}
	return filepath.Join(dir, "parley"), nil
}

// newLogger returns the structured logger that --log-format and
// --log-level describe, writing to the app's error writer.
func newLogger(c *cli.Context) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.String("log-level"))) // validated in Before
	opts := &slog.HandlerOptions{Level: lvl}
	if c.String("log-format") == "json" {
		return slog.New(slog.NewJSONHandler(c.App.ErrWriter, opts))
	}
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, opts))
}

// version is set at link time with -ldflags "-X main.version=..."; otherwise
// the module version or VCS revision recorded by the Go toolchain is used.
var version = ""

func versionString() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && (v == "" || v == "(devel)") {
			v = "devel-" + s.Value[:min(12, len(s.Value))]
		}
	}
	if v == "" {
		v = "(devel)"
	}
	return v + " " + bi.GoVersion
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print parley's version",
		Action: func(c *cli.Context) error {
			fmt.Fprintf(c.App.Writer, "parley %s\n", versionString())
			return nil
		},
	}
}

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		ArgsUsage: "SHELL",
		Description: "Load it into your shell, for example:\n" +
			"  source <(parley completion bash)",
		Action: func(c *cli.Context) error {
			switch sh := c.Args().First(); sh {
			case "bash", "zsh":
				script := bashCompletion
				if sh == "zsh" {
					script = "autoload -U +X bashcompinit && bashcompinit\n" + script
				}
				fmt.Fprint(c.App.Writer, script)
				return nil
			case "fish":
				s, err := c.App.ToFishCompletion()
				if err != nil {
					return fail(err)
				}
				fmt.Fprint(c.App.Writer, s)
				return nil
			case "":
				return misuse("completion needs a shell name", "run 'parley completion bash' (or zsh, fish)")
			default:
				return misuse(fmt.Sprintf("no completion script for shell %q", sh), "use bash, zsh or fish")
			}
		},
	}
}

// bashCompletion asks parley itself for candidates through urfave/cli's
// --generate-bash-completion flag.
const bashCompletion = `_parley_complete() {
  local cur opts
  COMPREPLY=()
  cur="${COMP_WORDS[COMP_CWORD]}"
  if [[ "$cur" == "-"* ]]; then
    opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
  else
    opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" --generate-bash-completion 2>/dev/null)
  fi
  COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  return 0
}
complete -o bashdefault -o default -F _parley_complete parley
`

// reorderArgs moves flags that follow positional arguments in front of them,
// so that "parley capture read FILE --json" works: urfave/cli v2 stops
// parsing flags at the first positional argument. Global flags given after
// a command move to the front. Everything after "--" stays as it is.
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	global := flagIndex(app.Flags)
	out := []string{args[0]}
	var globals, flags, pos []string
	level := global
	subs := app.Commands
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i:]...)
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			name := strings.TrimLeft(a, "-")
			name, _, hasValue := strings.Cut(name, "=")
			takesValue, known := level[name]
			dst := &flags
			if !known {
				if tv, isGlobal := global[name]; isGlobal {
					takesValue, known, dst = tv, true, &globals
				}
			}
			*dst = append(*dst, a)
			if known && takesValue && !hasValue && i+1 < len(args) {
				i++
				*dst = append(*dst, args[i])
			}
			continue
		}
		if len(pos) == 0 {
			if cmd := findCommand(subs, a); cmd != nil {
				out = append(out, flags...)
				flags = nil
				out = append(out, a)
				level = flagIndex(cmd.Flags)
				subs = cmd.Subcommands
				continue
			}
		}
		pos = append(pos, a)
	}
	res := append([]string{out[0]}, globals...)
	res = append(res, out[1:]...)
	res = append(res, flags...)
	return append(res, pos...)
}

// flagIndex maps every name and alias of flags to whether it takes a value.
func flagIndex(flags []cli.Flag) map[string]bool {
	m := map[string]bool{"help": false, "h": false, "generate-bash-completion": false}
	for _, f := range flags {
		takes := true
		if _, ok := f.(*cli.BoolFlag); ok {
			takes = false
		}
		for _, n := range f.Names() {
			m[n] = takes
		}
	}
	return m
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
