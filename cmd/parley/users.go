package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/parley-edu/parley/room/store"
)

// usersCommand is 'parley users': the accounts that 'parley serve --auth'
// logs members in with.
func usersCommand() *cli.Command {
	dbFlag := func() cli.Flag {
		return &cli.StringFlag{Name: "db", Usage: "accounts database (default: " + store.DefaultFile + " in the parley home)"}
	}
	stdinFlag := func() cli.Flag {
		return &cli.BoolFlag{Name: "password-stdin", Usage: "read the password from the first line of standard input instead of asking on the terminal"}
	}
	return &cli.Command{
		Name:  "users",
		Usage: "manage the accounts that 'parley serve --auth' logs members in with",
		Description: "Accounts live in the parley database (" + store.DefaultFile + " in the parley home, or --db FILE),\n" +
			"which stores each password only as an argon2id hash. A typical start:\n" +
			"  parley users add alice\n" +
			"  parley serve --scheme tls --auth",
		Subcommands: []*cli.Command{
			{
				Name:      "add",
				Usage:     "add an account, asking for its password twice",
				ArgsUsage: "NAME",
				Description: "NAME is 1-32 letters, digits, _ - or ., as in the room, and unique regardless of case.\n" +
					"The password is read from the terminal without echo, or with --password-stdin from\n" +
					"the first line of standard input; it is 1 to 1024 bytes. Makes the database if needed.",
				Flags:  []cli.Flag{dbFlag(), stdinFlag()},
				Action: usersAdd,
			},
			{
				Name:        "passwd",
				Usage:       "set an account's password",
				ArgsUsage:   "NAME",
				Description: "Asks for the new password twice, or reads it with --password-stdin. The new hash uses\nthe current argon2id parameters.",
				Flags:       []cli.Flag{dbFlag(), stdinFlag()},
				Action:      usersPasswd,
			},
			{
				Name:        "del",
				Usage:       "delete an account",
				ArgsUsage:   "NAME",
				Description: "A running 'parley serve --auth' disconnects a member who logged in with the account.",
				Flags:       []cli.Flag{dbFlag()},
				Action:      usersDel,
			},
			{
				Name:        "list",
				Usage:       "list the accounts: names, when each was made and its password set, and the hash parameters",
				ArgsUsage:   " ",
				Description: "Prints no password and no hash, only the parameters each hash was made with.",
				Flags: []cli.Flag{
					dbFlag(),
					&cli.BoolFlag{Name: "json", Usage: "print a JSON array of the accounts"},
				},
				Action: usersList,
			},
		},
	}
}

// nameArg returns the one NAME argument of the users subcommands.
func nameArg(c *cli.Context) (string, error) {
	if c.NArg() != 1 {
		return "", misuse(fmt.Sprintf("%s needs one account name, got %d arguments", c.Command.HelpName, c.NArg()),
			fmt.Sprintf("run '%s NAME'", c.Command.HelpName))
	}
	name := c.Args().First()
	if err := store.CheckName(name); err != nil {
		return "", misuse(fmt.Sprintf("%q cannot name an account", name),
			"a name is 1-32 letters, digits, _ - or ., as in the room")
	}
	return name, nil
}

// openUsersDB opens the database that --db names, or the one in the parley
// home. With create it makes the database (and the home) if missing.
func openUsersDB(c *cli.Context, create bool) (*store.DB, string, error) {
	path := c.String("db")
	if c.IsSet("db") && path == "" {
		return nil, "", misuse("--db needs a file name")
	}
	if path == "" {
		home, err := homeDir(c)
		if err != nil {
			return nil, "", err
		}
		path = filepath.Join(home, store.DefaultFile)
		if create {
			if err := os.MkdirAll(home, 0o700); err != nil {
				return nil, "", fail(fmt.Errorf("cannot create the parley home %s: %w", home, err),
					"choose another with --home DIR, or name the database with --db FILE")
			}
		}
	}
	db, err := store.Open(path, store.Options{Create: create})
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, "", fail(fmt.Errorf("no accounts database at %s", path),
			"add a user first with 'parley users add NAME"+dbHint(c)+"'")
	case errors.Is(err, store.ErrTooNew):
		return nil, "", fail(err, "use the newer parley that wrote it, or name another file with --db FILE")
	case errors.Is(err, store.ErrNotParley), errors.Is(err, store.ErrCorrupt):
		return nil, "", fail(err, "name another file with --db FILE; parley never recreates a database over one it cannot read")
	case err != nil:
		return nil, "", fail(err)
	}
	if mode := db.Tightened(); mode != 0 {
		fmt.Fprintf(c.App.ErrWriter, "parley: warning: %s was readable by other users (mode %04o); made it private (0600)\n", path, mode)
	}
	return db, path, nil
}

// dbHint repeats --db in a hint when the command was given one.
func dbHint(c *cli.Context) string {
	if c.IsSet("db") {
		return " --db " + c.String("db")
	}
	return ""
}

// checkPasswordInput refuses, before anything else happens, to ask for a
// password where it could not be typed without echo.
func checkPasswordInput(c *cli.Context) error {
	if c.Bool("password-stdin") || term.IsTerminal(int(os.Stdin.Fd())) {
		return nil
	}
	return misuse("standard input is not a terminal, so the password cannot be asked for without echo",
		"give it on the first line of standard input with --password-stdin, e.g. from a file: "+c.Command.HelpName+" NAME --password-stdin < FILE")
}

// newPassword reads the password for name: the first line of standard
// input with --password-stdin, or typed twice on the terminal without echo.
// The terminal is put in raw mode before the prompt appears, so nothing
// typed after it is echoed, and Ctrl-C ends the prompt with the terminal
// restored.
func newPassword(c *cli.Context, name string) ([]byte, error) {
	if c.Bool("password-stdin") {
		return firstLine(os.Stdin)
	}
	fd := int(os.Stdin.Fd())
	state, err := term.MakeRaw(fd)
	if err != nil {
		return nil, fail(fmt.Errorf("cannot turn off echo on the terminal: %w", err),
			"give the password on the first line of standard input with --password-stdin")
	}
	defer term.Restore(fd, state)
	t := term.NewTerminal(struct {
		io.Reader
		io.Writer
	}{os.Stdin, c.App.ErrWriter}, "")
	ask := func(prompt string) ([]byte, error) {
		line, err := t.ReadPassword(prompt)
		switch {
		case errors.Is(err, io.EOF): // Ctrl-C or Ctrl-D
			fmt.Fprint(c.App.ErrWriter, "\r\n")
			return nil, fail(errors.New("no password given; nothing was changed"))
		case err != nil:
			return nil, fail(fmt.Errorf("cannot read the password from the terminal: %w", err))
		}
		return []byte(line), nil
	}
	first, err := ask("Password for " + name + ": ")
	if err != nil {
		return nil, err
	}
	if len(first) == 0 {
		return nil, accountError(store.ErrEmptyPassword)
	}
	again, err := ask("Again: ")
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(first, again) {
		return nil, fail(errors.New("the two passwords differ; nothing was changed"), "run the command again and type the same password twice")
	}
	return first, nil
}

// firstLine reads the first line of r without its line ending, reading no
// more than a line of store.MaxPassword bytes can take.
func firstLine(r io.Reader) ([]byte, error) {
	line, err := bufio.NewReader(io.LimitReader(r, store.MaxPassword+3)).ReadBytes('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fail(fmt.Errorf("cannot read the password from standard input: %w", err))
	}
	line, _ = bytes.CutSuffix(line, []byte("\n"))
	line, _ = bytes.CutSuffix(line, []byte("\r"))
	return line, nil
}

// accountError explains an error of the store's account methods: a
// password it refused, or a failure.
func accountError(err error) error {
	switch {
	case errors.Is(err, store.ErrEmptyPassword):
		return fail(errors.New("the password is empty"), "type a password, or give it on the first line of standard input with --password-stdin")
	case errors.Is(err, store.ErrPasswordTooLong):
		return fail(fmt.Errorf("the password is too long: at most %d bytes", store.MaxPassword), "choose a shorter one; a long passphrase of a few words is plenty")
	}
	return fail(err)
}

func usersAdd(c *cli.Context) error {
	name, err := nameArg(c)
	if err != nil {
		return err
	}
	if err := checkPasswordInput(c); err != nil {
		return err
	}
	db, path, err := openUsersDB(c, true)
	if err != nil {
		return err
	}
	defer db.Close()
	// Say so before asking for a password that could not be used.
	if exists, err := db.UserExists(c.Context, name); err != nil {
		return accountError(err)
	} else if exists {
		return existsError(name, path, c)
	}
	password, err := newPassword(c, name)
	if err != nil {
		return err
	}
	err = db.AddUser(c.Context, name, password)
	switch {
	case errors.Is(err, store.ErrUserExists):
		return existsError(name, path, c)
	case err != nil:
		return accountError(err)
	}
	fmt.Fprintf(c.App.ErrWriter, "parley: added the account %s to %s\n", name, path)
	fmt.Fprintf(c.App.ErrWriter, "parley: next: parley serve --auth%s, and log in as %s\n", dbHint(c), name)
	return nil
}

// existsError and noUserError explain an account name that is taken, or
// unknown, in the database at path.
func existsError(name, path string, c *cli.Context) error {
	return fail(fmt.Errorf("there is already an account named %s in %s (names are unique regardless of case)", name, path),
		fmt.Sprintf("change its password with 'parley users passwd %s%s', or choose another name", name, dbHint(c)))
}

func noUserError(name, path string, c *cli.Context) error {
	return fail(fmt.Errorf("there is no account named %s in %s", name, path),
		"list the accounts with 'parley users list"+dbHint(c)+"'")
}

func usersPasswd(c *cli.Context) error {
	name, err := nameArg(c)
	if err != nil {
		return err
	}
	if err := checkPasswordInput(c); err != nil {
		return err
	}
	db, path, err := openUsersDB(c, false)
	if err != nil {
		return err
	}
	defer db.Close()
	if exists, err := db.UserExists(c.Context, name); err != nil {
		return accountError(err)
	} else if !exists {
		return noUserError(name, path, c)
	}
	password, err := newPassword(c, name)
	if err != nil {
		return err
	}
	err = db.SetPassword(c.Context, name, password)
	switch {
	case errors.Is(err, store.ErrNoUser):
		return noUserError(name, path, c)
	case err != nil:
		return accountError(err)
	}
	fmt.Fprintf(c.App.ErrWriter, "parley: set a new password for %s in %s\n", name, path)
	return nil
}

func usersDel(c *cli.Context) error {
	name, err := nameArg(c)
	if err != nil {
		return err
	}
	db, path, err := openUsersDB(c, false)
	if err != nil {
		return err
	}
	defer db.Close()
	err = db.DeleteUser(c.Context, name)
	switch {
	case errors.Is(err, store.ErrNoUser):
		return noUserError(name, path, c)
	case err != nil:
		return fail(err)
	}
	fmt.Fprintf(c.App.ErrWriter, "parley: deleted the account %s from %s\n", name, path)
	return nil
}

// userJSON is one account in 'users list --json'.
type userJSON struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	Changed time.Time `json:"password_set"`
	Hash    string    `json:"hash"`
}

func usersList(c *cli.Context) error {
	if c.NArg() > 0 {
		return misuse(fmt.Sprintf("users list takes no arguments, got %q", c.Args().First()))
	}
	db, path, err := openUsersDB(c, false)
	if err != nil {
		return err
	}
	defer db.Close()
	users, err := db.Users(c.Context)
	if err != nil {
		return fail(err)
	}
	if c.Bool("json") {
		out := make([]userJSON, len(users))
		for i, u := range users {
			out[i] = userJSON{Name: u.Name, Created: u.Created, Changed: u.Changed, Hash: u.Params}
		}
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return fail(err)
		}
	} else if len(users) > 0 {
		const layout = "2006-01-02 15:04"
		w := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tCREATED\tPASSWORD SET\tHASH")
		for _, u := range users {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", u.Name, u.Created.Local().Format(layout), u.Changed.Local().Format(layout), u.Params)
		}
		w.Flush()
	}
	switch len(users) {
	case 0:
		fmt.Fprintf(c.App.ErrWriter, "parley: no accounts in %s; add one with 'parley users add NAME%s'\n", path, dbHint(c))
	case 1:
		fmt.Fprintf(c.App.ErrWriter, "parley: 1 account in %s\n", path)
	default:
		fmt.Fprintf(c.App.ErrWriter, "parley: %d accounts in %s\n", len(users), path)
	}
	return nil
}
