package labs

import (
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-edu/parley/certs"
	"github.com/parley-edu/parley/schemes"
)

// member is the student in a room, as 'parley join' would be: a joined
// connection whose lines the test reads in order.
type member struct {
	t    *testing.T
	conn schemes.Conn
	name string // the name the room gave
}

// joinRoom connects to addr with sch and asks for name. It returns nil
// when the room refuses the name (it is taken).
func joinRoom(t *testing.T, sch schemes.Scheme, addr, name string) *member {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	conn, err := sch.Client(nc)
	if err != nil {
		nc.Close()
		t.Fatalf("handshake with %s: %v", addr, err)
	}
	nc.SetDeadline(time.Time{})
	m := &member{t: t, conn: conn}
	t.Cleanup(func() { conn.Close() })
	m.waitFor("* choose a name")
	if err := conn.WriteLines([]byte(name + "\n")); err != nil {
		t.Fatal(err)
	}
	for {
		line := m.next()
		if strings.HasPrefix(line, "! ") {
			conn.Close()
			return nil
		}
		if w, ok := strings.CutPrefix(line, "* welcome, "); ok {
			m.name, _, _ = strings.Cut(w, ".")
			return m
		}
	}
}

func (m *member) say(line string) {
	m.t.Helper()
	if err := m.conn.WriteLines([]byte(line + "\n")); err != nil {
		m.t.Fatal(err)
	}
}

func (m *member) next() string {
	m.t.Helper()
	m.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := m.conn.ReadMessage()
	if err != nil {
		m.t.Fatalf("reading the room: %v", err)
	}
	m.t.Logf("%s sees: %s", m.name, b)
	return string(b)
}

// waitFor reads lines until one contains want and returns it.
func (m *member) waitFor(want string) string {
	m.t.Helper()
	for {
		if l := m.next(); strings.Contains(l, want) {
			return l
		}
	}
}

// joinAsTeacher joins the tls room as teacher, waiting while the
// announcer holds the name.
func joinAsTeacher(t *testing.T, sch schemes.Scheme, addr string) *member {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := joinRoom(t, sch, addr, "teacher"); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatal("the name teacher stayed taken for 10s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestMTLSIdentitySolved(t *testing.T) {
	s, dir := startLab(t, "mtls-identity", "student1")
	ep := map[string]string{}
	for _, e := range s.Endpoints {
		ep[e.What] = e.Addr
	}
	tlsAddr, mtlsAddr := ep["tls room (names are self-asserted)"], ep["mtls room (names come from client certificates)"]
	// The student holds their own credentials and the CA certificate, and
	// nothing that could sign for anyone else.
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for i := range files {
		files[i] = filepath.Base(files[i])
	}
	if got, want := strings.Join(files, " "), "ca.crt student1.crt student1.key student1.sigkey"; got != want {
		t.Errorf("the lab wrote %s, want %s", got, want)
	}
	roots, err := certs.LoadPool(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}

	// The tls room: the announcement comes in under the name teacher, and
	// anyone may take that name.
	tlsSch, err := schemes.New("tls", schemes.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	me := joinRoom(t, tlsSch, tlsAddr, "student1")
	if l := me.waitFor(MTLSIdentityAnnouncement); l != "teacher: "+MTLSIdentityAnnouncement {
		t.Errorf("in the tls room the announcement reads %q, want it under the name teacher", l)
	}
	me.say("/quit")
	teacher := joinAsTeacher(t, tlsSch, tlsAddr)
	teacher.say("/whoami")
	if l := teacher.waitFor("you are "); !strings.Contains(l, "not verified") {
		t.Errorf("tls /whoami: got %q, want the name reported as not verified", l)
	}
	teacher.say("/msg registrar exam code please")
	l := teacher.waitFor("registrar (private): ")
	_, examCode, ok := strings.Cut(l, "the exam code you asked for: ")
	if !ok || !codeShape.MatchString(examCode) {
		t.Fatalf("the registrar did not give teacher the exam code: %q", l)
	}
	teacher.say("/quit")

	// The mtls room: our own certificate decides our name, and the
	// announcer's.
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "student1.crt"), filepath.Join(dir, "student1.key"))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := certs.ReadSigKey(filepath.Join(dir, "student1.sigkey"))
	if err != nil {
		t.Fatal(err)
	}
	mtlsSch, err := schemes.New("mtls", schemes.Config{RootCAs: roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{pair}, SigKey: sig})
	if err != nil {
		t.Fatal(err)
	}
	me = joinRoom(t, mtlsSch, mtlsAddr, "teacher")
	if me == nil || me.name != "student1" {
		t.Fatalf("asking for teacher in the mtls room: got %+v, want the name student1 from the certificate", me)
	}
	me.say("/nick teacher")
	if l := me.waitFor("! "); !strings.Contains(l, "bound to your client certificate") {
		t.Errorf("/nick in mtls: got %q", l)
	}
	me.say("/msg registrar exam code please")
	if l := me.waitFor("registrar (private): "); strings.Contains(l, examCode) || !strings.Contains(l, "yours says student1") {
		t.Errorf("the mtls registrar answered student1 with %q", l)
	}
	l = me.waitFor(": " + MTLSIdentityAnnouncement)
	who, _, _ := strings.Cut(l, ": ")
	if who == "teacher" || !strings.HasPrefix(who, "ta-") {
		t.Fatalf("in the mtls room the announcement came from %q", who)
	}

	answer := examCode + " " + who
	wantSolved(t, "mtls-identity", "student1", answer)
	for _, c := range []struct{ name, answer string }{
		{"code only", examCode},
		{"teacher as the sender", examCode + " teacher"},
		{"our own name as the sender", examCode + " student1"},
		{"the sender with a wrong code", "amber-falcon-1234 " + who},
		{"three parts", answer + " extra"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := checkAnswer(t, "mtls-identity", "student1", c.answer)
			if r.Correct {
				t.Fatalf("%q was accepted", c.answer)
			}
			if strings.Contains(r.Message, examCode) || strings.Contains(r.Message, who) {
				t.Errorf("the nudge %q gives a part of the answer away", r.Message)
			}
		})
	}
	for _, ta := range mtlsIdentityTAs(mustSeed(t, "student1")) {
		if ta != who {
			if r := checkAnswer(t, "mtls-identity", "student1", examCode+" "+ta); r.Correct {
				t.Errorf("a bystander %s was accepted as the announcer", ta)
			}
		}
	}
}

func mustSeed(t *testing.T, student string) []byte {
	t.Helper()
	s, err := Secret(testCourse, student, "mtls-identity")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMTLSIdentityStudentsDiffer(t *testing.T) {
	l, _ := Find("mtls-identity")
	k1, _ := l.Key(testCourse, "student1")
	k2, _ := l.Key(testCourse, "student2")
	if k1 == k2 {
		t.Errorf("two students have the same answer %q", k1)
	}
	if r := checkAnswer(t, "mtls-identity", "student1", k2); r.Correct {
		t.Errorf("student2's answer %q was accepted for student1", k2)
	}
}

func TestMTLSIdentityName(t *testing.T) {
	seed := mustSeed(t, "x")
	cases := []struct{ name, student, want string }{
		{"plain id", "jdoe", "jdoe"},
		{"upper case id", "JDoe", "jdoe"},
		{"id that cannot name a certificate", "j@doe", mtlsIdentityStudent},
		{"reserved file name", "ca", mtlsIdentityStudent},
		{"the teacher", "Teacher", mtlsIdentityStudent},
		{"the registrar", "registrar", mtlsIdentityStudent},
		{"an assistant", mtlsIdentityTAs(seed)[0], mtlsIdentityStudent},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := mtlsIdentityName(c.student, seed); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}
