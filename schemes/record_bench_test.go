package schemes

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
)

var benchSizes = []int{64, 16 << 10}

// BenchmarkRecordSealOpen seals one aes-cbc-hmac record (fresh IV from
// crypto/rand, padding, CBC, tag) and opens it again (tag check, CBC,
// padding), as a Conn's writer and reader do. Compare with
// BenchmarkBareCBCHMAC: the record layer should reach at least 80 % of its
// throughput.
func BenchmarkRecordSealOpen(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			c2s, _ := DeriveSessionKeys(testPSK, [NonceLen]byte{}, [NonceLen]byte{1})
			s, _ := newSealer(c2s, true)
			o, _ := newOpener(c2s, true)
			msg := make([]byte, size)
			var rec []byte
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if rec, err = s.sealRandom(rec[:0], msg); err != nil {
					b.Fatal(err)
				}
				if _, kind := o.open(rec[RecordHeaderLen:]); kind != 0 {
					b.Fatalf("open: %d", kind)
				}
			}
		})
	}
}

// BenchmarkBareCBCHMAC is the baseline: the same work done with crypto/aes,
// crypto/cipher and crypto/hmac directly on a pre-padded buffer (cipher
// and MAC set up once, no framing, no padding, no IV drawing).
func BenchmarkBareCBCHMAC(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			c2s, _ := DeriveSessionKeys(testPSK, [NonceLen]byte{}, [NonceLen]byte{1})
			block, _ := aes.NewCipher(c2s.Enc)
			mac := hmac.New(sha256.New, c2s.MAC)
			padded := (size/aes.BlockSize + 1) * aes.BlockSize
			buf := make([]byte, 8+RecordHeaderLen+RecordIVLen+padded)
			binary.BigEndian.PutUint32(buf[8:], uint32(RecordIVLen+padded+RecordTagLen))
			iv := buf[8+RecordHeaderLen : 8+RecordHeaderLen+RecordIVLen]
			rand.Read(iv)
			ct := buf[8+RecordHeaderLen+RecordIVLen:]
			var tag, check [sha256.Size]byte
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, ct)
				mac.Reset()
				mac.Write(buf)
				mac.Sum(tag[:0])
				mac.Reset()
				mac.Write(buf)
				if !hmac.Equal(mac.Sum(check[:0]), tag[:]) {
					b.Fatal("tag mismatch")
				}
				cipher.NewCBCDecrypter(block, iv).CryptBlocks(ct, ct)
			}
		})
	}
}
