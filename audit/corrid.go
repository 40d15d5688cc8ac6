package audit

import (
	"encoding/binary"
	"math/rand/v2"
	"time"
)

// Correlation IDs are time-ordered (version 7, RFC 9562) UUIDs in their
// canonical text form, the form of the IDs the source blog's interceptors
// put in the correlation_id header: 48 bits of Unix milliseconds, then 74
// random bits from math/rand/v2's top-level generator (the runtime's
// per-thread ChaCha8, seeded from the operating system's entropy;
// correlation IDs need uniqueness, not secrecy, and this is several times
// cheaper than crypto/rand). Their text sorts by creation time, so the
// trails of new messages sit together at the end of the correlator's
// table: looking up a new message's trail touches only the newest part of
// the table, whatever its size (and ClickHouse's events, ordered by
// correlation ID, are written in order).

// CorrelationIDLen is the length of a generated ID: a UUID in its text form.
const CorrelationIDLen = 36

// PutCorrelationID writes a new ID to dst. It does not allocate.
func PutCorrelationID(dst *[CorrelationIDLen]byte) { putID(dst, time.Now().UnixMilli()) }

func putID(dst *[CorrelationIDLen]byte, ms int64) {
	var u [16]byte
	binary.BigEndian.PutUint64(u[:8], uint64(ms)<<16)
	binary.LittleEndian.PutUint64(u[8:], rand.Uint64())
	binary.LittleEndian.PutUint16(u[6:8], uint16(rand.Uint32()))
	u[6] = u[6]&0x0f | 0x70 // version 7
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
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

// NewCorrelationID returns a new ID.
func NewCorrelationID() string {
	var id [CorrelationIDLen]byte
	PutCorrelationID(&id)
	return string(id[:])
}
