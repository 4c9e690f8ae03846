package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/parley-edu/parley/labs"
	"github.com/parley-edu/parley/schemes"
)

// labsCommand is 'parley labs': guided exercises with per-student secrets.
func labsCommand() *cli.Command {
	student := &cli.StringFlag{Name: "student", Aliases: []string{"s"}, Usage: "your student id (your answers are derived from it)"}
	course := &cli.StringFlag{Name: "course-secret", EnvVars: []string{"PARLEY_COURSE_SECRET"},
		Usage: "the course secret every student's answers are derived from (default: a random one under the parley home, created on first use)"}
	return &cli.Command{
		Name:  "labs",
		Usage: "guided exercises: a story, a scenario on loopback, and an automatic check of your answer",
		Description: "Every answer is different for every student: it is derived from the course secret,\n" +
			"the student id and the lab id with HMAC-SHA256. Start with:\n" +
			"  parley labs list\n" +
			"  parley labs show sniff-plain",
		Subcommands: []*cli.Command{
			{
				Name:   "list",
				Usage:  "list the labs: id, title, schemes, minutes, concepts",
				Action: labsList,
			},
			{
				Name:      "show",
				Usage:     "print a lab's handout; --hint N adds hints 1 to N",
				ArgsUsage: "ID",
				Flags:     []cli.Flag{&cli.IntFlag{Name: "hint", Usage: "also print hints 1 to N"}},
				Action:    labsShow,
			},
			{
				Name:      "start",
				Usage:     "run a lab's scenario (or write its files) for a student",
				ArgsUsage: "ID",
				Flags: []cli.Flag{student, course,
					&cli.StringFlag{Name: "dir", Usage: "folder for the lab's files (default: ./ID-STUDENT)"}},
				Action: labsStart,
			},
			{
				Name:      "check",
				Usage:     "check your answer: exit 0 when it is correct, 1 when not yet",
				ArgsUsage: "ID ANSWER",
				Flags:     []cli.Flag{student, course},
				Action:    labsCheck,
			},
			{
				Name:      "key",
				Usage:     "instructors: print a student's expected answer",
				ArgsUsage: "ID",
				Flags:     []cli.Flag{student, course},
				Action:    labsKey,
			},
			{
				Name:      "grade",
				Usage:     "instructors: check a CSV file of student,answer rows and print a score table",
				ArgsUsage: "ID FILE",
				Flags:     []cli.Flag{course},
				Action:    labsGrade,
			},
			{
				Name:  "passphrase-key",
				Usage: "write the pre-shared key file that a passphrase gives (Argon2id, as serve --passphrase does)",
				Description: "For the passphrase-crack lab: try a guess against a capture with\n" +
					"  parley labs passphrase-key --passphrase WORD --out guess.psk\n" +
					"  parley capture read cap.pcapng --psk guess.psk",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "passphrase", Usage: "the passphrase to stretch"},
					&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "key file to write (overwritten)"},
				},
				Action: labsPassphraseKey,
			},
		},
	}
}

// labArg returns the lab named by the first argument.
// labStudent reads what start, check and key all need: the lab named by
// the first of nargs arguments, --student and the course secret.
func labStudent(c *cli.Context, nargs int, usage string) (l *labs.Lab, student string, course []byte, err error) {
	if l, err = labArg(c, nargs, usage); err != nil {
		return nil, "", nil, err
	}
	if student, err = studentFlag(c); err != nil {
		return nil, "", nil, err
	}
	if course, err = courseSecret(c); err != nil {
		return nil, "", nil, err
	}
	return l, student, course, nil
}

func labArg(c *cli.Context, nargs int, usage string) (*labs.Lab, error) {
	if c.NArg() != nargs {
		return nil, misuse(fmt.Sprintf("%s needs %s, got %d argument(s)", c.Command.HelpName, usage, c.NArg()),
			fmt.Sprintf("run '%s --help'", c.Command.HelpName))
	}
	l, err := labs.Find(c.Args().First())
	if err != nil {
		return nil, misuse(err.Error(), "the labs are: "+strings.Join(labs.IDs(), ", "), "run 'parley labs list'")
	}
	return l, nil
}

// courseSecret returns --course-secret, $PARLEY_COURSE_SECRET or the
// installation's default, creating the default on first use.
func courseSecret(c *cli.Context) ([]byte, error) {
	if s := strings.TrimSpace(c.String("course-secret")); s != "" {
		return []byte(s), nil
	}
	if c.IsSet("course-secret") {
		return nil, misuse("--course-secret is empty")
	}
	home, err := homeDir(c)
	if err != nil {
		return nil, err
	}
	secret, path, created, err := labs.LoadCourseSecret(filepath.Join(home, "labs"))
	if err != nil {
		return nil, fail(err, "set one with --course-secret or PARLEY_COURSE_SECRET")
	}
	if created {
		fmt.Fprintf(c.App.ErrWriter, "parley: created this installation's course secret in %s (mode 0600); a class shares one secret through --course-secret or PARLEY_COURSE_SECRET\n", path)
	}
	return secret, nil
}

// studentFlag returns the normalised --student.
func studentFlag(c *cli.Context) (string, error) {
	if !c.IsSet("student") {
		return "", misuse(c.Command.HelpName+" needs --student ID", "your answers are derived from your student id: add --student YOUR-ID")
	}
	s, err := labs.NormalizeStudent(c.String("student"))
	if err != nil {
		return "", misuse(err.Error(), "use a student id without spaces or commas, e.g. --student jdoe")
	}
	return s, nil
}

func labsList(c *cli.Context) error {
	if c.NArg() > 0 {
		return misuse("labs list takes no arguments", "run 'parley labs show ID' for one lab")
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTITLE\tSCHEMES\tMIN\tCONCEPTS")
	for _, l := range labs.All() {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\n", l.ID, l.Title, strings.Join(l.Schemes, ","), l.Minutes, strings.Join(l.Concepts, "; "))
	}
	w.Flush()
	fmt.Fprintln(c.App.ErrWriter, "parley: next: parley labs show ID")
	return nil
}

func labsShow(c *cli.Context) error {
	l, err := labArg(c, 1, "a lab id")
	if err != nil {
		return err
	}
	hints := l.Hints()
	n := c.Int("hint")
	if n < 0 || n > len(hints) {
		return misuse(fmt.Sprintf("--hint %d: lab %s has hints 1 to %d", n, l.ID, len(hints)))
	}
	fmt.Fprint(c.App.Writer, l.Handout())
	if n > 0 {
		fmt.Fprint(c.App.Writer, "\n## Hints\n")
		for i := 0; i < n; i++ {
			fmt.Fprintf(c.App.Writer, "\n%d. %s\n", i+1, hints[i])
		}
	}
	if n < len(hints) {
		fmt.Fprintf(c.App.Writer, "\n(%d more hint(s): parley labs show %s --hint %d)\n", len(hints)-n, l.ID, n+1)
	}
	return nil
}

func labsStart(c *cli.Context) error {
	l, student, course, err := labStudent(c, 1, "a lab id")
	if err != nil {
		return err
	}
	dir := c.String("dir")
	if dir == "" {
		dir = l.ID + "-" + student
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscallInterrupts()...)
	defer stop()
	out := &labsOut{w: c.App.Writer}
	sess, err := l.Start(ctx, labs.StartConfig{Course: course, Student: student, Dir: dir, Out: out, Logger: labLogger(c)})
	if err != nil {
		return fail(err, "run it again; if it keeps failing, run with --log-level debug")
	}
	for _, ep := range sess.Endpoints {
		out.printf("%s: %s\n", ep.What, ep.Addr)
	}
	for _, f := range sess.Files {
		out.printf("wrote %s\n", f)
	}
	for _, n := range sess.Notes {
		out.printf("%s\n", n)
	}
	if l.FileOnly {
		fmt.Fprintf(c.App.ErrWriter, "parley: lab %s is ready; the handout: parley labs show %s; then: parley labs check %s ANSWER --student %s\n", l.ID, l.ID, l.ID, student)
		return nil
	}
	fmt.Fprintf(c.App.ErrWriter, "parley: lab %s is running; press Ctrl-C to stop it\n", l.ID)
	err = sess.Wait()
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(c.App.ErrWriter, "parley: lab %s stopped; its files are complete\n", l.ID)
	return nil
}

func labsCheck(c *cli.Context) error {
	l, student, course, err := labStudent(c, 2, "a lab id and your answer (quote it if it has spaces)")
	if err != nil {
		return err
	}
	res, err := l.Check(course, student, c.Args().Get(1))
	if err != nil {
		return fail(err)
	}
	if res.Correct {
		fmt.Fprintf(c.App.Writer, "correct: %s\n", res.Message)
		return nil
	}
	fmt.Fprintf(c.App.Writer, "not yet: %s\n", res.Message)
	return fail(errors.New("not yet"), fmt.Sprintf("the hints: parley labs show %s --hint 1", l.ID))
}

func labsKey(c *cli.Context) error {
	l, student, course, err := labStudent(c, 1, "a lab id")
	if err != nil {
		return err
	}
	key, err := l.Key(course, student)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintln(c.App.Writer, key)
	return nil
}

func labsGrade(c *cli.Context) error {
	l, err := labArg(c, 2, "a lab id and a CSV file of student,answer rows")
	if err != nil {
		return err
	}
	course, err := courseSecret(c)
	if err != nil {
		return err
	}
	f, err := os.Open(c.Args().Get(1))
	if err != nil {
		return fail(err, "give a CSV file with one student,answer row per student")
	}
	defer f.Close()
	rows, err := l.Grade(course, f)
	if err != nil {
		return fail(err, "each row is student,answer; quote an answer that contains a comma")
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "STUDENT\tRESULT\tDETAIL")
	correct := 0
	for _, g := range rows {
		switch {
		case g.Err != nil:
			fmt.Fprintf(w, "%s\tinvalid\tline %d: %v\n", g.Student, g.Line, g.Err)
		case g.Result.Correct:
			correct++
			fmt.Fprintf(w, "%s\tcorrect\t\n", g.Student)
		default:
			fmt.Fprintf(w, "%s\tnot yet\t%s\n", g.Student, g.Result.Message)
		}
	}
	w.Flush()
	fmt.Fprintf(c.App.Writer, "score: %d/%d correct\n", correct, len(rows))
	return nil
}

func labsPassphraseKey(c *cli.Context) error {
	if c.NArg() > 0 {
		return misuse("labs passphrase-key takes no arguments", "give --passphrase WORD --out FILE")
	}
	pass, out := c.String("passphrase"), c.String("out")
	if pass == "" || out == "" {
		return misuse("labs passphrase-key needs --passphrase and --out", "e.g. parley labs passphrase-key --passphrase maple --out guess.psk")
	}
	key := schemes.PassphraseKey(pass)
	if err := os.WriteFile(out, labs.EncodePSK(key), 0o600); err != nil {
		return fail(err)
	}
	fmt.Fprintf(c.App.ErrWriter, "parley: wrote the key of passphrase %q to %s\n", pass, out)
	return nil
}

// labsOut serialises what a running lab's services and the command print.
type labsOut struct {
	mu sync.Mutex
	w  io.Writer
}

func (o *labsOut) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.w.Write(b)
}

func (o *labsOut) printf(format string, args ...any) { fmt.Fprintf(o, format, args...) }

// labLogger is the scenario's logger: the bots' and the room's comings and
// goings are noise in a student's terminal, so only warnings show unless
// --log-level was given.
func labLogger(c *cli.Context) *slog.Logger {
	if c.IsSet("log-level") {
		return newLogger(c)
	}
	opts := &slog.HandlerOptions{Level: slog.LevelWarn}
	if c.String("log-format") == "json" {
		return slog.New(slog.NewJSONHandler(c.App.ErrWriter, opts))
	}
	return slog.New(slog.NewTextHandler(c.App.ErrWriter, opts))
}
