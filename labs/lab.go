// Package labs holds parley's guided exercises: for each lab a handout
// (embedded Markdown in handouts/), a scenario that runs itself on loopback
// or writes the files the lab works on, and a check of the student's answer.
//
// Every answer is derived from a course secret, the student's id and the
// lab's id (see Secret), so two students get different answers, answers
// cannot be copied, and `labs start` and `labs check` agree without any
// shared state.
//
// The package only returns values and typed errors; printing and exit codes
// belong to cmd/parley.
package labs

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
)

//go:embed handouts/*.md handouts/*.txt
var handoutFS embed.FS

// ErrUnknownLab is returned (wrapped in *UnknownLabError) for a lab id that
// does not exist.
var ErrUnknownLab = errors.New("labs: unknown lab")

// ErrNoStudent is returned when a student id is missing or unusable.
var ErrNoStudent = errors.New("labs: missing or invalid student id")

// UnknownLabError names the lab id that was not found.
type UnknownLabError struct{ ID string }

func (e *UnknownLabError) Error() string { return fmt.Sprintf("labs: unknown lab %q", e.ID) }
func (e *UnknownLabError) Unwrap() error { return ErrUnknownLab }

// A Lab is one exercise. Its fields are descriptive; the behaviour is in
// its methods. Labs are immutable and safe for concurrent use.
type Lab struct {
	ID       string
	Title    string
	Schemes  []string
	Minutes  int      // estimated time for a first-time student
	Concepts []string // the ideas it teaches, in a few words each
	// FileOnly is true when Start only writes files and returns; otherwise
	// Start runs services until its context ends.
	FileOnly bool

	// answer returns the expected answer for a student's seed.
	answer func(seed []byte) string
	// check reports whether got (normalised) is right for seed; nil means
	// correct. The default compares with answer.
	check func(seed []byte, got string) error
	// demonstrated says, in one sentence, what a correct answer proves.
	demonstrated string
	// start sets the lab up; see Start.
	start func(ctx context.Context, e *env) (*Session, error)
}

var registry []*Lab

func register(l *Lab) { registry = append(registry, l) }

// All returns every lab, in the order a course would take them.
func All() []*Lab {
	out := make([]*Lab, 0, len(registry))
	for _, id := range order {
		for _, l := range registry {
			if l.ID == id {
				out = append(out, l)
			}
		}
	}
	return out
}

// order is the course order; a lab is listed only once it is registered.
var order = []string{
	"sniff-plain", "xor-key", "cbc-bitflip", "padding-oracle", "length-leak",
	"tls-mitm", "mtls-identity", "length-extension", "passphrase-crack", "tls-decrypt",
	"data-at-rest",
}

// Find returns the lab with the given id, or an error wrapping
// ErrUnknownLab.
func Find(id string) (*Lab, error) {
	for _, l := range registry {
		if l.ID == id {
			return l, nil
		}
	}
	return nil, &UnknownLabError{ID: id}
}

// IDs returns the ids of every lab in course order.
func IDs() []string {
	var ids []string
	for _, l := range All() {
		ids = append(ids, l.ID)
	}
	return ids
}

// hintsHeading separates a handout's body from its hints.
const hintsHeading = "\n## Hints\n"

var hintStart = regexp.MustCompile(`(?m)^\d+\. `)

func (l *Lab) rawHandout() string {
	b, err := handoutFS.ReadFile("handouts/" + l.ID + ".md")
	if err != nil {
		panic("labs: no handout for " + l.ID) // caught by TestHandouts
	}
	return string(b)
}

// Handout returns the lab's handout without its hints: plain Markdown,
// readable in a terminal.
func (l *Lab) Handout() string {
	body, _, _ := strings.Cut(l.rawHandout(), hintsHeading)
	return strings.TrimRight(body, "\n") + "\n"
}

// Hints returns the lab's hints in order, each as Markdown text without its
// number.
func (l *Lab) Hints() []string {
	_, tail, ok := strings.Cut(l.rawHandout(), hintsHeading)
	if !ok {
		return nil
	}
	idx := hintStart.FindAllStringIndex(tail, -1)
	var hints []string
	for i, m := range idx {
		end := len(tail)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		hints = append(hints, strings.TrimSpace(tail[m[1]:end]))
	}
	return hints
}

// Key returns the expected answer of student for this lab under the course
// secret.
func (l *Lab) Key(course []byte, student string) (string, error) {
	seed, err := Secret(course, student, l.ID)
	if err != nil {
		return "", err
	}
	return l.answer(seed), nil
}

// A Result is the outcome of a check.
type Result struct {
	Correct bool
	// Message is one or two sentences for the student: on success what
	// they demonstrated, otherwise a nudge that never contains the answer.
	Message string
}

// NotYetError is a wrong answer with a nudge for the student; the nudge
// never contains the answer.
type NotYetError struct{ Hint string }

func (e *NotYetError) Error() string { return "labs: not yet: " + e.Hint }

func notYet(format string, args ...any) error {
	return &NotYetError{Hint: fmt.Sprintf(format, args...)}
}

// Check checks student's answer. A wrong answer is a Result with Correct
// false, not an error; errors are reserved for misuse (a missing student).
func (l *Lab) Check(course []byte, student, answer string) (Result, error) {
	seed, err := Secret(course, student, l.ID)
	if err != nil {
		return Result{}, err
	}
	got := normalize(answer)
	if got == "" {
		return Result{Message: "the answer is empty; give it as one argument (quote it if it has spaces)"}, nil
	}
	var cerr error
	if l.check != nil {
		cerr = l.check(seed, got)
	} else if got != normalize(l.answer(seed)) {
		cerr = notYet("that is not the secret in your scenario; check that you ran 'parley labs start %s' with your own --student id and read the files it wrote", l.ID)
	}
	if cerr != nil {
		var ny *NotYetError
		if errors.As(cerr, &ny) {
			return Result{Message: ny.Hint}, nil
		}
		return Result{}, cerr
	}
	return Result{Correct: true, Message: l.demonstrated}, nil
}

// normalize makes answers comparable: surrounding space trimmed, inner runs
// of white space collapsed to one space, lower case.
func normalize(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

// StartConfig says where a lab's scenario puts its files and its running
// commentary.
type StartConfig struct {
	Course  []byte
	Student string
	// Dir is the folder the lab writes its files into; it is created.
	Dir string
	// Out receives what the scenario's bots and services say that the
	// student should see (acknowledgements, refusals); nil discards it.
	Out io.Writer
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
}

// An Endpoint is an address the student connects to, or must listen on.
type Endpoint struct {
	What string // e.g. "padding oracle"
	Addr string // host:port
}

// A Session is a started lab. For a file-only lab it is already finished;
// otherwise its services run until the context given to Start ends, and
// Wait returns once everything has stopped and every file is complete.
type Session struct {
	Files     []string   // paths written (or being written until Wait returns)
	Endpoints []Endpoint // where to connect
	Notes     []string   // one-line instructions to print after the endpoints
	done      chan struct{}
	err       error
}

// Wait blocks until the session has stopped and returns the first error of
// its services, if any.
func (s *Session) Wait() error {
	if s.done == nil {
		return nil
	}
	<-s.done
	return s.err
}

// env is what a lab's start function gets.
type env struct {
	cfg  StartConfig
	seed []byte
	log  *slog.Logger
	out  io.Writer
}

// Start runs the lab's scenario for cfg.Student. For a file-only lab it
// writes the files and returns a finished Session; for a live lab it
// starts the services and returns once they are ready, and they run until
// ctx ends (see Session.Wait).
func (l *Lab) Start(ctx context.Context, cfg StartConfig) (*Session, error) {
	seed, err := Secret(cfg.Course, cfg.Student, l.ID)
	if err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		return nil, errors.New("labs: no folder to write the lab's files into")
	}
	if err := mkdirPrivate(cfg.Dir); err != nil {
		return nil, err
	}
	e := &env{cfg: cfg, seed: seed, log: cfg.Logger, out: cfg.Out}
	if e.log == nil {
		e.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if e.out == nil {
		e.out = io.Discard
	}
	return l.start(ctx, e)
}
