package room

import (
	"bytes"
	"testing"
)

func TestAppendSanitized(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"clean", "hello, world", "hello, world"},
		{"escape sequence", "\x1b[2J", "^[[2J"},
		{"bell and tab", "a\x07b\tc", "a^Gb c"},
		{"delete", "x\x7f", "x^?"},
		{"C1 control, encoded", "a\u009bb", "a<U+009B>b"},
		{"raw C1 byte, not UTF-8", "a\x9bb", "a\uFFFDb"},
		{"invalid UTF-8", "\xff\xfe", "\uFFFD\uFFFD"},
		{"non-ASCII text stays", "naïve ☕", "naïve ☕"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			AppendSanitized(&b, []byte(tt.in))
			if got := b.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
