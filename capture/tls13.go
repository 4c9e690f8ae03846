package capture

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"errors"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/hkdf"
)

// TLS 1.3 traffic key derivation and record decryption (RFC 8446 §5.2,
// §5.3, §7.1, §7.2, §7.3), for reading captures with a key log.

// tls13Suite returns the hash, key length and AEAD constructor of a TLS 1.3
// cipher suite, or false for a suite we cannot decrypt.
func tls13Suite(id uint16) (func() hash.Hash, int, func(key []byte) (cipher.AEAD, error), bool) {
	switch id {
	case tls.TLS_AES_128_GCM_SHA256:
		return sha256.New, 16, newGCM, true
	case tls.TLS_AES_256_GCM_SHA384:
		return sha512.New384, 32, newGCM, true
	case tls.TLS_CHACHA20_POLY1305_SHA256:
		return sha256.New, chacha20poly1305.KeySize, chacha20poly1305.New, true
	}
	return nil, 0, nil, false
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// hkdfExpandLabel is HKDF-Expand-Label (RFC 8446 §7.1) with an empty
// context.
func hkdfExpandLabel(h func() hash.Hash, secret []byte, label string, length int) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddUint16(uint16(length))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddBytes([]byte("tls13 "))
		b.AddBytes([]byte(label))
	})
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) {})
	info, err := b.Bytes()
	if err != nil {
		return nil, err
	}
	out := make([]byte, length)
	if _, err := hkdf.Expand(h, secret, info).Read(out); err != nil {
		return nil, err
	}
	return out, nil
}

// trafficKeys are the keys of one direction and epoch.
type trafficKeys struct {
	secret []byte
	aead   cipher.AEAD
	iv     []byte
	seq    uint64
	hash   func() hash.Hash
	keyLen int
	newAE  func([]byte) (cipher.AEAD, error)
}

// newTrafficKeys derives the write key and IV from a traffic secret
// (RFC 8446 §7.3).
func newTrafficKeys(suite uint16, secret []byte) (*trafficKeys, error) {
	h, keyLen, newAE, ok := tls13Suite(suite)
	if !ok {
		return nil, errors.New("capture: cipher suite cannot be decrypted")
	}
	key, err := hkdfExpandLabel(h, secret, "key", keyLen)
	if err != nil {
		return nil, err
	}
	iv, err := hkdfExpandLabel(h, secret, "iv", 12)
	if err != nil {
		return nil, err
	}
	aead, err := newAE(key)
	if err != nil {
		return nil, err
	}
	return &trafficKeys{secret: secret, aead: aead, iv: iv, hash: h, keyLen: keyLen, newAE: newAE}, nil
}

// next returns the keys after a KeyUpdate (RFC 8446 §7.2).
func (k *trafficKeys) next(suite uint16) (*trafficKeys, error) {
	s, err := hkdfExpandLabel(k.hash, k.secret, "traffic upd", k.hash().Size())
	if err != nil {
		return nil, err
	}
	return newTrafficKeys(suite, s)
}

// open decrypts one TLS 1.3 record (header included) and returns the inner
// content type and content (RFC 8446 §5.2, §5.3). The sequence number
// advances only on success.
func (k *trafficKeys) open(rec []byte) (byte, []byte, error) {
	var nonce [12]byte
	copy(nonce[:], k.iv)
	for i := 0; i < 8; i++ {
		nonce[4+i] ^= byte(k.seq >> (56 - 8*i))
	}
	pt, err := k.aead.Open(nil, nonce[:], rec[5:], rec[:5])
	if err != nil {
		return 0, nil, err
	}
	k.seq++
	i := len(pt) - 1
	for i >= 0 && pt[i] == 0 {
		i--
	}
	if i < 0 {
		return 0, nil, errors.New("capture: record has no content type")
	}
	return pt[i], pt[:i], nil
}
