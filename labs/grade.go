package labs

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
)

// A Graded is one row of a grading run.
type Graded struct {
	Line    int // line in the CSV file
	Student string
	Result  Result
	Err     error // the row could not be checked (e.g. a bad student id)
}

// Grade checks every `student,answer` row of a CSV file (RFC 4180; a first
// row whose first field is "student" is taken as a header and skipped).
// It fails only when the file is not CSV or a row does not have two fields.
func (l *Lab) Grade(course []byte, r io.Reader) ([]Graded, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	var out []Graded
	for first := true; ; first = false {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("labs: reading the answers: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if first && strings.EqualFold(strings.TrimSpace(rec[0]), "student") {
			continue
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		if len(rec) != 2 {
			return out, fmt.Errorf("labs: line %d has %d fields, want 2 (student,answer)", line, len(rec))
		}
		g := Graded{Line: line, Student: strings.TrimSpace(rec[0])}
		g.Result, g.Err = l.Check(course, rec[0], rec[1])
		out = append(out, g)
	}
}
