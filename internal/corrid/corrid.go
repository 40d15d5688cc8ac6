// Package corrid generates kaudit correlation IDs: random (version 4) UUIDs
// in their canonical text form, the same kind of ID the source blog's
// interceptors put in the correlation_id header.
//
//	var id [corrid.Len]byte
//	corrid.New(&id)
//	msg.Headers = append(msg.Headers, sarama.RecordHeader{Key: []byte("correlation_id"), Value: id[:]})
//
// The 122 random bits come from math/rand/v2's top-level generator: the
// runtime's per-thread ChaCha8, seeded from the operating system's entropy.
// Correlation IDs need uniqueness, not secrecy, and this is several times
// cheaper than crypto/rand.
package corrid

import (
	"encoding/binary"
	"math/rand/v2"
)

// Len is the length of an ID: a UUID in its text form.
const Len = 36

// New writes a new random ID to dst. It does not allocate.
func New(dst *[Len]byte) {
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

// String returns a new random ID.
func String() string {
	var id [Len]byte
	New(&id)
	return string(id[:])
}
