package labs

import (
	"strings"
	"sync"
)

// Words returns the lab word list (handouts/words.txt): 200 short lower-case
// words, used for secret codes and, in passphrase-crack, as the dictionary.
// The caller must not modify the slice.
var Words = sync.OnceValue(func() []string {
	b, err := handoutFS.ReadFile("handouts/words.txt")
	if err != nil {
		panic("labs: word list missing: " + err.Error())
	}
	return strings.Fields(string(b))
})
