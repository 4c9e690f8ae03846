package labs

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-edu/parley/labs/attack"
)

// recordingOut keeps what a lab says to the student.
type recordingOut struct {
	t  *testing.T
	mu sync.Mutex
	b  strings.Builder
}

func (o *recordingOut) Write(p []byte) (int, error) {
	o.t.Logf("lab says: %s", strings.TrimRight(string(p), "\n"))
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *recordingOut) String() string { o.mu.Lock(); defer o.mu.Unlock(); return o.b.String() }

func TestCBCBitflipSolved(t *testing.T) {
	l, _ := Find("cbc-bitflip")
	out := &recordingOut{t: t}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	s, err := l.Start(ctx, StartConfig{Course: testCourse, Student: "student1", Dir: t.TempDir(), Out: out})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); s.Wait() }()
	ep := map[string]string{}
	for _, e := range s.Endpoints {
		ep[e.What] = e.Addr
	}
	// The student's relay (parley mitm): '0' ^ '9' = 0x09 into IV byte 4,
	// the amount's first digit, of alice's record 2.
	for _, scheme := range []string{"aes-cbc", "aes-cbc-hmac"} {
		r, err := attack.NewRelay(attack.Config{Scheme: scheme, Listen: ep[scheme+": alice connects to (start your relay here)"],
			Upstream: ep[scheme+" room"], Flip: &attack.Flip{Offset: 4, Mask: '0' ^ '9', Record: 2}})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); r.Serve(ctx) }()
	}
	re := regexp.MustCompile(`receipt: (\S+)`)
	deadline := time.Now().Add(30 * time.Second)
	for !(re.MatchString(out.String()) && strings.Contains(out.String(), "alice (aes-cbc-hmac): sent pay 0100 to bob, then the room closed my connection")) {
		if time.Now().After(deadline) {
			t.Fatalf("no receipt and no detection within 30s; the lab said:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "bank (aes-cbc): alice paid 9100 to bob") {
		t.Errorf("the bank did not see 9100: %s", out.String())
	}
	if strings.Contains(out.String(), "bank (aes-cbc-hmac): alice paid") {
		t.Errorf("the hmac bank saw a payment through the flipping relay: %s", out.String())
	}
	wantSolved(t, "cbc-bitflip", "student1", re.FindStringSubmatch(out.String())[1])
}
