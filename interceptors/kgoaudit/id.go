package kgoaudit

import (
	"encoding/binary"
	"math/rand/v2"
)

// idLen is the length of a UUID in its text form.
const idLen = 36

// newID writes a random (version 4) UUID in its canonical text form to dst.
//
// The 122 random bits come from math/rand/v2's top-level generator: the
// runtime's per-thread ChaCha8, seeded from the operating system's entropy.
// Correlation IDs need uniqueness, not secrecy, and this is several times
// cheaper than crypto/rand (see BenchmarkNewID).
func newID(dst *[idLen]byte) {
	var u [16]byte
	binary.LittleEndian.PutUint64(u[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(u[8:], rand.Uint64())
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	const hex = "0123456789abcdef"
	j := 0
	for i, b := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst[j] = '-'
			j++
		}
		dst[j] = hex[b>>4]
		dst[j+1] = hex[b&0x0f]
		j += 2
	}
}
