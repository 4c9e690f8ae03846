package labs

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-edu/parley/capture"
	"github.com/parley-edu/parley/labs/attack"
	"github.com/parley-edu/parley/labs/scenario"
)

// eveSees returns every event of the capture at path as an eavesdropper
// without keys reads it.
func eveSees(t *testing.T, path string) []capture.Event {
	t.Helper()
	evs, err := scenario.ReadAsEve(path)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

var orgRE = regexp.MustCompile(`O=([^,]+)`)

func TestTLSMITMSolved(t *testing.T) {
	l, _ := Find("tls-mitm")
	out := &recordingOut{t: t}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	s, err := l.Start(ctx, StartConfig{Course: testCourse, Student: "student1", Dir: dir, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Wait(); err != nil {
			t.Errorf("the lab stopped with: %v", err)
		}
	}()

	// Eve: the TLS 1.2 recording shows the server's certificate, the TLS
	// 1.3 one does not.
	org := ""
	for _, ev := range eveSees(t, filepath.Join(dir, TLSMITMCapture12)) {
		for _, c := range ev.Certificates {
			if m := orgRE.FindStringSubmatch(c.Subject); m != nil && strings.HasPrefix(c.Subject, "CN=localhost") {
				org = m[1]
			}
		}
	}
	if org == "" {
		t.Fatal("the TLS 1.2 recording shows no server certificate with an organisation")
	}
	for _, ev := range eveSees(t, filepath.Join(dir, TLSMITMCapture13)) {
		if len(ev.Certificates) > 0 || strings.Contains(ev.Text, org) {
			t.Fatalf("the TLS 1.3 recording shows the certificate to Eve: %+v", ev)
		}
		if ev.Plaintext != "" {
			t.Fatalf("the TLS 1.3 recording gives Eve plaintext: %q", ev.Plaintext)
		}
	}

	// Mallory: parley mitm --scheme tls on the address alice and bob dial.
	ep := map[string]string{}
	for _, e := range s.Endpoints {
		ep[e.What] = e.Addr
	}
	var mu sync.Mutex
	var events []attack.Event
	r, err := attack.NewRelay(attack.Config{Scheme: "tls", Listen: ep["alice and bob connect to (start your relay here)"],
		Upstream: ep["tls room (your relay's upstream)"], OnEvent: func(e attack.Event) {
			t.Logf("mitm: %s", e)
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); r.Serve(ctx) }()
	codeRead := regexp.MustCompile(regexp.QuoteMeta(tlsMITMCodeLine) + `(\S+)`)
	answer, blocked := "", false
	deadline := time.Now().Add(20 * time.Second)
	for answer == "" || !blocked || !strings.Contains(out.String(), "bob (verifies): refused the certificate") {
		if time.Now().After(deadline) {
			t.Fatalf("within 20s: code %q, bob blocked %v; the lab said:\n%s", answer, blocked, out.String())
		}
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		for _, e := range events {
			if m := codeRead.FindStringSubmatch(e.Text); e.Kind == attack.KindRead && e.From == "alice" && m != nil {
				answer = m[1]
			}
			blocked = blocked || e.Kind == attack.KindBlocked
			if e.Kind == attack.KindRead && e.From == "bob" {
				t.Fatalf("Mallory read bob, who verifies: %s", e)
			}
		}
		mu.Unlock()
	}
	if !strings.Contains(out.String(), "alice (skips verification): sent my payroll code") {
		t.Errorf("alice did not report her code as delivered: %s", out.String())
	}

	full := answer + " " + org
	wantSolved(t, "tls-mitm", "student1", full)
	for _, c := range []struct{ name, answer string }{
		{"code only", answer},
		{"organisation only", org},
		{"code and a wrong organisation", answer + " Example Payroll Ltd"},
		{"the right organisation and a wrong code", "amber-falcon-1234 " + org},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := checkAnswer(t, "tls-mitm", "student1", c.answer)
			if r.Correct {
				t.Fatalf("%q was accepted", c.answer)
			}
			if strings.Contains(normalize(r.Message), normalize(full)) || strings.Contains(r.Message, answer) {
				t.Errorf("the nudge %q gives the answer away", r.Message)
			}
		})
	}
	if r := checkAnswer(t, "tls-mitm", "student1", "CN=localhost,O="+org+" "+answer); r.Correct {
		t.Error("the parts in the wrong order were accepted")
	}
	if r := checkAnswer(t, "tls-mitm", "student1", answer+" CN=localhost,O="+org); !r.Correct {
		t.Errorf("the subject as tools print it was rejected: %s", r.Message)
	}
}

func TestTLSMITMStudentsDiffer(t *testing.T) {
	s1, _ := Secret(testCourse, "student1", "tls-mitm")
	s2, _ := Secret(testCourse, "student2", "tls-mitm")
	if code(s1, "payroll") == code(s2, "payroll") {
		t.Error("two students have the same payroll code")
	}
	l, _ := Find("tls-mitm")
	k1, _ := l.Key(testCourse, "student1")
	k2, _ := l.Key(testCourse, "student2")
	if k1 == k2 {
		t.Errorf("two students have the same answer %q", k1)
	}
	if r := checkAnswer(t, "tls-mitm", "student1", k2); r.Correct {
		t.Errorf("student2's answer %q was accepted for student1", k2)
	}
}
