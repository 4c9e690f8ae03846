// Package sha256ext is SHA-256 (FIPS 180-4) with a settable state, for the
// length-extension lab: given SHA-256(secret ‖ message) and the length of
// secret ‖ message, it continues hashing as if it had processed those
// bytes and their padding itself. Go's crypto/sha256 does not expose its
// state, which is why this small, slow, test-and-lab-only copy exists. Do
// not use it for anything else.
package sha256ext

import (
	"encoding/binary"
	"math/bits"
)

// Size is the length of a SHA-256 digest in bytes; BlockSize its block.
const (
	Size      = 32
	BlockSize = 64
)

var iv = [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}

var k = [64]uint32{
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

// A Digest is a SHA-256 computation. It is not safe for concurrent use.
type Digest struct {
	h   [8]uint32
	buf []byte
	n   uint64 // bytes processed, including those before a Resume
}

// New returns a Digest in SHA-256's initial state.
func New() *Digest { return &Digest{h: iv} }

// Resume returns a Digest in the state SHA-256 was in right after it
// hashed some input of length n and that input's padding, whose digest is
// sum: the state of a Merkle–Damgård hash is its output. Writing more and
// calling Sum gives SHA-256(input ‖ Padding(n) ‖ more) without knowing
// input.
func Resume(sum [Size]byte, n uint64) *Digest {
	d := &Digest{n: n + uint64(len(Padding(n)))}
	for i := range d.h {
		d.h[i] = binary.BigEndian.Uint32(sum[4*i:])
	}
	return d
}

// Padding returns the padding SHA-256 appends to an input of n bytes:
// 0x80, zeros, and the input's length in bits as 8 big-endian bytes, so
// that the total is a multiple of 64.
func Padding(n uint64) []byte {
	p := []byte{0x80}
	for (n+uint64(len(p)))%BlockSize != 56 {
		p = append(p, 0)
	}
	return binary.BigEndian.AppendUint64(p, n*8)
}

// Write adds p to the input.
func (d *Digest) Write(p []byte) (int, error) {
	d.n += uint64(len(p))
	d.buf = append(d.buf, p...)
	for len(d.buf) >= BlockSize {
		d.block(d.buf[:BlockSize])
		d.buf = d.buf[BlockSize:]
	}
	return len(p), nil
}

// Sum returns the digest of everything written (after the resumed state).
// It does not change d.
func (d *Digest) Sum() [Size]byte {
	c := *d
	c.buf = append([]byte(nil), d.buf...)
	c.Write(Padding(d.n))
	var out [Size]byte
	for i, v := range c.h {
		binary.BigEndian.PutUint32(out[4*i:], v)
	}
	return out
}

func (d *Digest) block(p []byte) {
	var w [64]uint32
	for i := 0; i < 16; i++ {
		w[i] = binary.BigEndian.Uint32(p[4*i:])
	}
	for i := 16; i < 64; i++ {
		s0 := bits.RotateLeft32(w[i-15], -7) ^ bits.RotateLeft32(w[i-15], -18) ^ (w[i-15] >> 3)
		s1 := bits.RotateLeft32(w[i-2], -17) ^ bits.RotateLeft32(w[i-2], -19) ^ (w[i-2] >> 10)
		w[i] = w[i-16] + s0 + w[i-7] + s1
	}
	a, b, c, dd, e, f, g, h := d.h[0], d.h[1], d.h[2], d.h[3], d.h[4], d.h[5], d.h[6], d.h[7]
	for i := 0; i < 64; i++ {
		s1 := bits.RotateLeft32(e, -6) ^ bits.RotateLeft32(e, -11) ^ bits.RotateLeft32(e, -25)
		ch := (e & f) ^ (^e & g)
		t1 := h + s1 + ch + k[i] + w[i]
		s0 := bits.RotateLeft32(a, -2) ^ bits.RotateLeft32(a, -13) ^ bits.RotateLeft32(a, -22)
		maj := (a & b) ^ (a & c) ^ (b & c)
		t2 := s0 + maj
		h, g, f, e, dd, c, b, a = g, f, e, dd+t1, c, b, a, t1+t2
	}
	d.h[0] += a
	d.h[1] += b
	d.h[2] += c
	d.h[3] += dd
	d.h[4] += e
	d.h[5] += f
	d.h[6] += g
	d.h[7] += h
}
