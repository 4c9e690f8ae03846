package labs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/parley-edu/parley/certs"
	"github.com/parley-edu/parley/labs/scenario"
	"github.com/parley-edu/parley/schemes"
)

// MTLSIdentityAnnouncement is what somebody claiming to be the teacher
// posts in both rooms of the mtls-identity lab.
const MTLSIdentityAnnouncement = "this is your teacher speaking: the exam moves to room B12"

// mtlsIdentityEvery is how often the announcement is made in each room.
const mtlsIdentityEvery = 3 * time.Second

// mtlsIdentityStudent is the member name of a student whose id cannot name
// a certificate or is one of the cast's names.
const mtlsIdentityStudent = "student"

func init() {
	register(&Lab{
		ID:       "mtls-identity",
		Title:    "Pass as the teacher in a tls room, then fail to in an mtls room",
		Schemes:  []string{"tls", "mtls"},
		Minutes:  35,
		Concepts: []string{"server-only authentication: names are self-asserted", "client certificates bind names (mutual TLS)", "who said it: provenance"},
		answer:   func(seed []byte) string { return code(seed, "exam") + " " + mtlsIdentityImpostor(seed) },
		check:    mtlsIdentityCheck,
		demonstrated: "you got the exam code by calling yourself teacher in a tls room, where TLS authenticates only the server; " +
			"in the mtls room the client certificate (RFC 8446 §4.3.2, §4.4.2) decided your name and the announcer's, so you could " +
			"neither pass as the teacher nor be fooled about who spoke.",
		start: startMTLSIdentity,
	})
}

// mtlsIdentityTAs returns the three teaching assistants of a student's
// rooms; three different words, so three different names.
func mtlsIdentityTAs(seed []byte) []string {
	w := Words()
	i := pick(seed, "ta", len(w))
	return []string{"ta-" + w[i], "ta-" + w[(i+67)%len(w)], "ta-" + w[(i+134)%len(w)]}
}

// mtlsIdentityImpostor is the assistant who claims to be the teacher.
func mtlsIdentityImpostor(seed []byte) string {
	return mtlsIdentityTAs(seed)[pick(seed, "impostor", 3)]
}

func mtlsIdentityCheck(seed []byte, got string) error {
	f := strings.Fields(got)
	if len(f) != 2 {
		return notYet("give two parts separated by a space: the exam code the registrar gives teacher in the tls room, then the name the mtls room shows on the teacher's announcement")
	}
	c, who := f[0], f[1]
	codeOK, whoOK := c == code(seed, "exam"), who == mtlsIdentityImpostor(seed)
	decoy := false
	for _, ta := range mtlsIdentityTAs(seed) {
		decoy = decoy || who == ta && !whoOK
	}
	switch {
	case codeOK && whoOK:
		return nil
	case !codeShape.MatchString(c):
		return notYet("the first part is the exam code (word-word-1234) that the registrar gives to teacher in the tls room; the second is a member's name")
	case codeOK && who == "teacher":
		return notYet("the exam code is right; but in the mtls room nobody is teacher without the teacher's certificate: which name does the room put before the announcement?")
	case codeOK && decoy:
		return notYet("the exam code is right; that assistant is in the mtls room, but the announcement came from somebody else: it is repeated every few seconds")
	case codeOK:
		return notYet("the exam code is right; the second part is the name the mtls room shows before %q", MTLSIdentityAnnouncement)
	case whoOK:
		return notYet("the name is right, but that is not your exam code: join the tls room as teacher and ask the registrar")
	default:
		return notYet("neither part is right for your scenario; check that you ran 'parley labs start mtls-identity' with your own --student id")
	}
}

// mtlsIdentityName is the name on the student's client certificate: the
// student id when it can name one and is not taken by the cast.
func mtlsIdentityName(student string, seed []byte) string {
	s, err := NormalizeStudent(student)
	if err != nil || certs.CheckName(s) != nil {
		return mtlsIdentityStudent
	}
	for _, n := range append([]string{"teacher", "registrar"}, mtlsIdentityTAs(seed)...) {
		if strings.EqualFold(s, n) {
			return mtlsIdentityStudent
		}
	}
	return s
}

func startMTLSIdentity(ctx context.Context, e *env) (*Session, error) {
	// The rooms' CA key and signing secret stay in a private folder that
	// is removed when the lab stops; the student gets only their own
	// certificate, as a real member would.
	home, err := os.MkdirTemp("", "parley-lab-mtls-identity-")
	if err != nil {
		return nil, fmt.Errorf("labs: cannot create the rooms' folder: %w", err)
	}
	var scs []*scenario.Scenario
	closeAll := func() error {
		var errs []error
		for _, sc := range scs {
			errs = append(errs, sc.Close())
		}
		if err := os.RemoveAll(home); err != nil {
			errs = append(errs, fmt.Errorf("labs: cannot remove the rooms' folder: %w", err))
		}
		return errors.Join(errs...)
	}
	fail := func(err error) (*Session, error) {
		closeAll()
		return nil, err
	}
	rooms := map[string]*scenario.Scenario{}
	for _, scheme := range []string{"tls", "mtls"} {
		sc, err := scenario.Start(ctx, scenario.Options{Scheme: scheme, Home: home, Logger: e.log})
		if err != nil {
			return fail(err)
		}
		scs = append(scs, sc)
		rooms[scheme] = sc
	}
	s := &Session{done: make(chan struct{})}
	name := mtlsIdentityName(e.cfg.Student, e.seed)
	if _, _, err := rooms["mtls"].Credentials().Client(name); err != nil {
		return fail(err)
	}
	certDir := rooms["mtls"].Credentials().CertDir
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{{certs.CACertFile, certs.CertMode}, {name + ".crt", certs.CertMode}, {name + ".key", certs.KeyMode}, {name + ".sigkey", certs.KeyMode}} {
		dst := e.path(f.name)
		if err := copyFile(filepath.Join(certDir, f.name), dst, f.mode); err != nil {
			return fail(err)
		}
		s.Files = append(s.Files, dst)
	}

	var wg sync.WaitGroup
	for _, scheme := range []string{"tls", "mtls"} {
		sc := rooms[scheme]
		registrar, err := sc.Join("registrar")
		if err != nil {
			return fail(err)
		}
		for _, ta := range mtlsIdentityTAs(e.seed) {
			if ta == mtlsIdentityImpostor(e.seed) {
				continue
			}
			if _, err := sc.Join(ta); err != nil {
				return fail(err)
			}
		}
		wg.Add(1)
		go func() { defer wg.Done(); runRegistrar(ctx, e, scheme, registrar) }()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		every(ctx, mtlsIdentityEvery, func() {
			for _, scheme := range []string{"tls", "mtls"} {
				if err := claimTeacher(ctx, rooms[scheme], mtlsIdentityImpostor(e.seed)); err != nil && ctx.Err() == nil {
					e.log.Debug("labs: the announcement failed", "scheme", scheme, "err", err)
				}
			}
		})
	}()

	ca, cert := e.path(certs.CACertFile), e.path(name+".crt")
	s.Endpoints = []Endpoint{
		{What: "tls room (names are self-asserted)", Addr: rooms["tls"].Addr()},
		{What: "mtls room (names come from client certificates)", Addr: rooms["mtls"].Addr()},
	}
	s.Notes = []string{
		fmt.Sprintf("your client certificate names you %s; its key and signing key are beside it", name),
		fmt.Sprintf("e.g. parley join --scheme tls --server %s --ca %s --name teacher", rooms["tls"].Addr(), ca),
		fmt.Sprintf("e.g. parley join --scheme mtls --server %s --ca %s --cert %s --name teacher", rooms["mtls"].Addr(), ca, cert),
	}
	go func() {
		defer close(s.done)
		<-ctx.Done()
		s.err = closeAll()
		wg.Wait()
	}()
	return s, nil
}

// runRegistrar answers every private message to the registrar of the
// scheme's room: the exam code for a member called teacher, a refusal for
// anyone else. It runs until ctx ends or the room closes.
func runRegistrar(ctx context.Context, e *env, scheme string, registrar *scenario.Bot) {
	onPrivate(ctx, registrar, func(from string) {
		switch {
		case strings.EqualFold(from, "teacher"):
			registrar.Say("/msg " + from + " here is the exam code you asked for: " + code(e.seed, "exam"))
			fmt.Fprintf(e.out, "registrar (%s room): gave the exam code to %q, taking the name on trust\n", scheme, from)
		case scheme == "mtls":
			registrar.Say("/msg " + from + " only the teacher gets the exam code; this room names members by their client certificates, and yours says " + from)
			fmt.Fprintf(e.out, "registrar (%s room): refused %s, as its client certificate names it\n", scheme, from)
		default:
			registrar.Say("/msg " + from + " only the teacher gets the exam code, and you are " + from)
			fmt.Fprintf(e.out, "registrar (%s room): refused %s, who is not called teacher\n", scheme, from)
		}
	})
}

// claimTeacher connects to sc's room as certName (in mtls, with
// certName's certificate), asks for the name teacher, posts the
// announcement under whatever name the room gave, and quits. A taken name
// ends the attempt.
func claimTeacher(ctx context.Context, sc *scenario.Scenario, certName string) error {
	conn, _, _, err := sc.Connect(certName)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(scenario.DefaultTimeout))
	if err := readUntil(conn, "* choose a name"); err != nil {
		return err
	}
	if err := conn.WriteLines([]byte("teacher\n")); err != nil {
		return err
	}
	for {
		m, err := conn.ReadMessage()
		if err != nil {
			return err
		}
		line := string(m)
		if strings.HasPrefix(line, "! ") {
			return fmt.Errorf("labs: the room refused the name teacher: %s", line)
		}
		if strings.HasPrefix(line, "* welcome, ") {
			break
		}
	}
	if err := conn.WriteLines([]byte(MTLSIdentityAnnouncement + "\n/quit\n")); err != nil {
		return err
	}
	// The room closes the connection after /quit, once the announcement
	// has gone out to everyone.
	for {
		if _, err := conn.ReadMessage(); err != nil {
			var se *schemes.SignatureError
			if errors.As(err, &se) {
				continue
			}
			return nil
		}
	}
}
