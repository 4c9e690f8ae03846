package schemes

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// PSKLen is the length of an aes-cbc-hmac / aes-cbc pre-shared key.
const PSKLen = 32

// The passphrase KDF (PROTOCOL.md, "Pre-shared key"): Argon2id (RFC 9106)
// with the second recommended parameter set of RFC 9106 §4 (t=3, m=64 MiB,
// p=4) and a fixed salt. Both sides must compute the same key without
// talking first, so the salt cannot be random; the cost is that one
// precomputed dictionary attacks every parley room at once. A passphrase is
// therefore only as strong as it is long: prefer `parley keys gen`.
const (
	PassphraseSalt    = "parley-passphrase-v1"
	PassphraseTime    = 3
	PassphraseMemory  = 64 * 1024 // KiB
	PassphraseThreads = 4
)

// SessionKeyInfo is the HKDF info string of DeriveSessionKeys.
const SessionKeyInfo = "parley record keys v1"

// ErrBadPSK is wrapped by every ParsePSK error.
var ErrBadPSK = errors.New("schemes: bad pre-shared key file")

// ParsePSK decodes the contents of a key file written by GeneratePSK
// (`parley keys gen`): standard base64 (RFC 4648 §4) of PSKLen bytes,
// surrounding white space ignored. Every error wraps ErrBadPSK and says
// what was wrong: empty, not base64, or the wrong size.
func ParsePSK(data []byte) ([]byte, error) {
	text := bytes.TrimSpace(data)
	if len(text) == 0 {
		return nil, fmt.Errorf("%w: it is empty, want %d bytes in base64 as written by parley keys gen", ErrBadPSK, PSKLen)
	}
	key := make([]byte, base64.StdEncoding.DecodedLen(len(text)))
	n, err := base64.StdEncoding.Decode(key, text)
	if err != nil {
		if len(data) == PSKLen {
			return nil, fmt.Errorf("%w: it holds %d raw bytes, want them in base64 as written by parley keys gen", ErrBadPSK, PSKLen)
		}
		return nil, fmt.Errorf("%w: it is not base64 (%v), want %d bytes in base64 as written by parley keys gen", ErrBadPSK, err, PSKLen)
	}
	if n != PSKLen {
		return nil, fmt.Errorf("%w: it holds %d bytes, want %d", ErrBadPSK, n, PSKLen)
	}
	return key[:n], nil
}

// GeneratePSK returns a new random pre-shared key of PSKLen bytes from
// crypto/rand, encoded for a key file: base64 and a newline.
func GeneratePSK() (encoded []byte, err error) {
	key := make([]byte, PSKLen)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("schemes: failed to generate a pre-shared key: %w", err)
	}
	encoded = base64.StdEncoding.AppendEncode(nil, key)
	return append(encoded, '\n'), nil
}

// PassphraseKey stretches a passphrase into a PSKLen-byte pre-shared key
// with Argon2id and the fixed parameters above. It is deliberately slow
// (tens to hundreds of milliseconds, 64 MiB of memory): call it once per
// process, not per connection. The key is only as strong as the passphrase
// is long.
func PassphraseKey(passphrase string) []byte {
	return argon2.IDKey([]byte(passphrase), []byte(PassphraseSalt), PassphraseTime, PassphraseMemory, PassphraseThreads, PSKLen)
}

// DirectionKeys are the keys of one direction of an aes-cbc-hmac or aes-cbc
// connection: a 32-byte AES-256 key and a 32-byte HMAC-SHA256 key (unused by
// aes-cbc).
type DirectionKeys struct {
	Enc, MAC []byte
}

// DeriveSessionKeys derives one connection's keys from the pre-shared key
// and the two hello nonces with HKDF-SHA256 (RFC 5869): IKM = psk,
// salt = clientNonce ‖ serverNonce, info = SessionKeyInfo, 128 bytes of
// output split, in order, into the client-to-server encryption and MAC keys
// and the server-to-client encryption and MAC keys. Fresh nonces make every
// connection's keys different, so records cannot be moved between
// connections.
func DeriveSessionKeys(psk []byte, clientNonce, serverNonce [NonceLen]byte) (clientToServer, serverToClient DirectionKeys) {
	salt := make([]byte, 0, 2*NonceLen)
	salt = append(append(salt, clientNonce[:]...), serverNonce[:]...)
	okm, err := hkdf.Key(sha256.New, psk, salt, SessionKeyInfo, 4*32)
	if err != nil {
		// hkdf.Key fails only for an output over 255 hash lengths.
		panic("schemes: hkdf: " + err.Error())
	}
	return DirectionKeys{Enc: okm[0:32:32], MAC: okm[32:64:64]},
		DirectionKeys{Enc: okm[64:96:96], MAC: okm[96:128:128]}
}
