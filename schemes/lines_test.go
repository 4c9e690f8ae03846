package schemes

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestLineReader(t *testing.T) {
	type result struct {
		line    string
		tooLong bool
	}
	tests := []struct {
		name  string
		in    string
		max   int
		chunk int
		want  []result
		end   error
	}{
		{"lines", "alice\nhello\n", 64, 64, []result{{"alice", false}, {"hello", false}}, io.EOF},
		{"crlf", "alice\r\nhi\r\r\n", 64, 64, []result{{"alice", false}, {"hi\r", false}}, io.EOF},
		{"empty lines", "\n\r\n", 64, 1, []result{{"", false}, {"", false}}, io.EOF},
		{"exactly the limit", "12345\n", 5, 2, []result{{"12345", false}}, io.EOF},
		{"limit plus CR", "12345\r\n", 5, 2, []result{{"12345", false}}, io.EOF},
		{"one over the limit", "123456\nok\n", 5, 2, []result{{"", true}, {"ok", false}}, io.EOF},
		{"far over the limit, in pieces", strings.Repeat("x", 5000) + "\nok\n", 10, 7, []result{{"", true}, {"ok", false}}, io.EOF},
		{"final line without LF is dropped", "a\npartial", 64, 3, []result{{"a", false}}, io.ErrUnexpectedEOF},
		{"long line grows the buffer", strings.Repeat("y", 3000) + "\n", 4000, 4096, []result{{strings.Repeat("y", 3000), false}}, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lr := newLineReader(&chunkReader{b: []byte(tt.in), n: tt.chunk}, tt.max)
			for i, want := range tt.want {
				got, err := lr.readLine()
				if want.tooLong {
					if !errors.Is(err, ErrMessageTooLong) {
						t.Fatalf("line %d: got %q, %v, want ErrMessageTooLong", i, got, err)
					}
					continue
				}
				if err != nil || string(got) != want.line {
					t.Fatalf("line %d: got %q, %v, want %q", i, got, err, want.line)
				}
			}
			if _, err := lr.readLine(); err != tt.end {
				t.Errorf("at the end: got %v, want %v", err, tt.end)
			}
			if _, err := lr.readLine(); err != tt.end {
				t.Errorf("again at the end: got %v, want the sticky %v", err, tt.end)
			}
		})
	}
}

func TestLineReaderAllocations(t *testing.T) {
	in := strings.Repeat("hello, room\n", 1000)
	r := &chunkReader{b: []byte(in), n: 100}
	lr := newLineReader(r, 64)
	lr.readLine() // first call allocates the buffer
	allocs := testing.AllocsPerRun(500, func() { lr.readLine() })
	if allocs != 0 {
		t.Errorf("got %v allocations per line, want 0", allocs)
	}
}
