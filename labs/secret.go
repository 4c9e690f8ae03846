package labs

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// SecretLabel is the domain-separation prefix of Secret.
const SecretLabel = "parley lab secret v1"

// CourseSecretFile is the name of the per-installation course secret in
// the labs folder of the parley home.
const CourseSecretFile = "course.secret"

// maxStudentLen bounds a student id.
const maxStudentLen = 64

// NormalizeStudent returns the canonical form of a student id (trimmed,
// lower case), so that "Alice " and "alice" get the same secrets. It fails
// with ErrNoStudent for an empty id, one longer than 64 bytes, or one with
// control characters, commas or white space inside.
func NormalizeStudent(student string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(student))
	if s == "" {
		return "", fmt.Errorf("%w: it is empty", ErrNoStudent)
	}
	if len(s) > maxStudentLen {
		return "", fmt.Errorf("%w: %q is longer than %d bytes", ErrNoStudent, s, maxStudentLen)
	}
	for _, r := range s {
		if r < 0x21 || r == 0x7f || r == ',' {
			return "", fmt.Errorf("%w: %q contains white space, a comma or a control character", ErrNoStudent, s)
		}
	}
	return s, nil
}

// Secret returns the 32-byte seed from which every per-student value of a
// lab (its secret code, keys, amounts) is derived:
//
//	seed = HMAC-SHA256(key = course secret,
//	                   "parley lab secret v1" ‖ 0x00 ‖ lab id ‖ 0x00 ‖ student id)
//
// with the student id normalised by NormalizeStudent (RFC 2104 HMAC). The
// same inputs always give the same seed, so `labs start` and `labs check`
// agree without shared state; different students or labs give unrelated
// seeds, and without the course secret nobody can compute another
// student's answers.
func Secret(course []byte, student, lab string) ([]byte, error) {
	s, err := NormalizeStudent(student)
	if err != nil {
		return nil, err
	}
	if len(course) == 0 {
		return nil, errors.New("labs: empty course secret")
	}
	m := hmac.New(sha256.New, course)
	m.Write([]byte(SecretLabel))
	m.Write([]byte{0})
	m.Write([]byte(lab))
	m.Write([]byte{0})
	m.Write([]byte(s))
	return m.Sum(nil), nil
}

// derive returns 32 bytes for one purpose of a lab: HMAC-SHA256(seed, label).
func derive(seed []byte, label string) []byte {
	m := hmac.New(sha256.New, seed)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// pick returns a number in [0, n) derived from seed and label. The modulo
// bias is negligible for the small n the labs use.
func pick(seed []byte, label string, n int) int {
	return int(binary.BigEndian.Uint64(derive(seed, label)) % uint64(n))
}

// code returns a memorable per-student secret such as "amber-falcon-7314":
// two words of the lab word list and four digits (about 2^28 values).
func code(seed []byte, label string) string {
	w := Words()
	return fmt.Sprintf("%s-%s-%04d", w[pick(seed, label+"/1", len(w))], w[pick(seed, label+"/2", len(w))],
		pick(seed, label+"/3", 10000))
}

// LoadCourseSecret returns the installation's default course secret from
// dir/course.secret, creating it (32 random bytes as hex, mode 0600, and
// dir with mode 0700) on first use. created reports whether it was made now.
func LoadCourseSecret(dir string) (secret []byte, path string, created bool, err error) {
	path = filepath.Join(dir, CourseSecretFile)
	if b, err := os.ReadFile(path); err == nil {
		s := strings.TrimSpace(string(b))
		if s == "" {
			return nil, path, false, fmt.Errorf("labs: course secret %s is empty", path)
		}
		return []byte(s), path, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, path, false, fmt.Errorf("labs: cannot read the course secret: %w", err)
	}
	if err := mkdirPrivate(dir); err != nil {
		return nil, path, false, err
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	s := hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another process created it first: use theirs.
		return LoadCourseSecret(dir)
	}
	if err != nil {
		return nil, path, false, fmt.Errorf("labs: cannot create the course secret: %w", err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return nil, path, false, fmt.Errorf("labs: cannot write the course secret: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, path, false, fmt.Errorf("labs: cannot write the course secret: %w", err)
	}
	return []byte(s), path, true, nil
}

func mkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("labs: cannot create %s: %w", dir, err)
	}
	return nil
}
