package audit

import (
	"encoding/binary"
	"math/rand/v2"
)

// Correlation IDs are random (version 4) UUIDs in their canonical text form,
// the same kind of ID the source blog's interceptors put in the
// correlation_id header. The 122 random bits come from math/rand/v2's
// top-level generator: the runtime's per-thread ChaCha8, seeded from the
// operating system's entropy. Correlation IDs need uniqueness, not secrecy,
// and this is several times cheaper than crypto/rand.

// CorrelationIDLen is the length of a generated ID: a UUID in its text form.
const CorrelationIDLen = 36

// PutCorrelationID writes a new random ID to dst. It does not allocate.
func PutCorrelationID(dst *[CorrelationIDLen]byte) {
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

// NewCorrelationID returns a new random ID.
func NewCorrelationID() string {
	var id [CorrelationIDLen]byte
	PutCorrelationID(&id)
	return string(id[:])
}
