package labs

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/parley-edu/parley/labs/scenario"
)

// LengthLeakCandidates are the orders alice may send in the length-leak lab,
// numbered from 1 in the handout. Their lengths fall in five different
// numbers of AES blocks, so each one's record size is unique.
var LengthLeakCandidates = []string{
	"buy",
	"sell all shares now",
	"hold, and wait for the quarterly report",
	"buy 500 more shares before the market opens tomorrow",
	"sell half today, and move the rest to the bond fund by friday noon",
}

// lengthLeakOrders is how many orders alice sends.
const lengthLeakOrders = 3

func init() {
	register(&Lab{
		ID:       "length-leak",
		Title:    "Tell which message was sent from record sizes alone",
		Schemes:  []string{"aes-cbc-hmac"},
		Minutes:  25,
		Concepts: []string{"encryption hides content, not length", "traffic analysis", "padding to a fixed size"},
		FileOnly: true,
		answer:   lengthLeakAnswer,
		check: func(seed []byte, got string) error {
			f := strings.FieldsFunc(got, func(r rune) bool { return r == ',' || r == ' ' || r == ';' })
			if len(f) != lengthLeakOrders {
				return notYet("give the %d order numbers (1-%d) in the order alice sent them, e.g. \"2 5 1\"", lengthLeakOrders, len(LengthLeakCandidates))
			}
			for _, s := range f {
				if n, err := strconv.Atoi(s); err != nil || n < 1 || n > len(LengthLeakCandidates) {
					return notYet("%q is not an order number from 1 to %d", s, len(LengthLeakCandidates))
				}
			}
			if strings.Join(f, " ") != lengthLeakAnswer(seed) {
				return notYet("that is not the sequence in your capture: compare the ciphertext lengths of alice's records with the candidates' lengths")
			}
			return nil
		},
		demonstrated: "you told which messages alice sent from the sizes of her records alone: AES-CBC with a MAC hides " +
			"the content but not its length (to 16 bytes); only padding messages to a common size hides that.",
		start: func(ctx context.Context, e *env) (*Session, error) {
			path := e.path("length-leak.pcapng")
			lines := []say{chat("bob", "alice, send me today's orders one by one")}
			for _, i := range lengthLeakPicks(e.seed) {
				lines = append(lines, say{From: "alice", Text: LengthLeakCandidates[i], To: "bob"})
			}
			// alice joins first, so hers is the first connection.
			lines = append([]say{chat("alice", "hi")}, lines...)
			if err := recordTalk(ctx, scenario.Options{Scheme: "aes-cbc-hmac", CapturePath: path, Logger: e.log}, lines); err != nil {
				return nil, err
			}
			var b strings.Builder
			for i, c := range LengthLeakCandidates {
				fmt.Fprintf(&b, "%d %s\n", i+1, c)
			}
			s, err := e.writeFiles([2]string{"candidates.txt", b.String()})
			if err != nil {
				return nil, err
			}
			s.Files = append([]string{path}, s.Files...)
			return s, nil
		},
	})
}

func lengthLeakPicks(seed []byte) []int {
	var p []int
	for i := range lengthLeakOrders {
		p = append(p, pick(seed, fmt.Sprintf("order %d", i), len(LengthLeakCandidates)))
	}
	return p
}

func lengthLeakAnswer(seed []byte) string {
	var s []string
	for _, i := range lengthLeakPicks(seed) {
		s = append(s, strconv.Itoa(i+1))
	}
	return strings.Join(s, " ")
}
