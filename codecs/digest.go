package codecs

import (
	"encoding/binary"

	"github.com/cespare/xxhash/v2"
)

// Digest is the 64-bit integrity hash of a record's key and value carried in
// Event.Digest: XXH64 (seed 0) of the key length as 8 little-endian bytes,
// then the key, then the value. The length prefix keeps (key "ab", value "c")
// apart from (key "a", value "bc"); a nil and an empty key or value hash
// alike. Other implementations must compute exactly this to be comparable.
// Digest does not allocate.
func Digest(key, value []byte) uint64 {
	var d xxhash.Digest
	d.Reset()
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(key)))
	_, _ = d.Write(n[:])
	_, _ = d.Write(key)
	_, _ = d.Write(value)
	return d.Sum64()
}
