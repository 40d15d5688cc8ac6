package correlator

import (
	"hash/maphash"
	"math/bits"
)

// keyFilter is a blocked Bloom filter over the trail keys stored in a table
// partition: a key it does not hold is not stored, so the first event of a
// message (a key never seen) needs no Pebble lookup, which walks every
// memtable and level (the largest single cost of an event before it).
// Each key sets filterProbes bits of one 512-bit block (one cache line).
// Keys are never removed: deleted trails stay in the filter until it is
// rebuilt from the table (tableStorage.buildFilter), and a key it holds may
// not be stored (about 1 % at capacity); either way the lookup is made.
type keyFilter struct {
	seed   maphash.Seed
	blocks [][8]uint64
	n      int // keys added
	cap    int // keys it was sized for
}

const (
	filterBitsPerKey = 10
	filterProbes     = 7
)

func newKeyFilter(capacity int) *keyFilter {
	nblocks := max(1, capacity*filterBitsPerKey/512)
	return &keyFilter{seed: maphash.MakeSeed(), blocks: make([][8]uint64, nblocks), cap: capacity}
}

// probe returns the block of a key's hash and the two halves of its bit
// positions.
func (f *keyFilter) probe(h uint64) (*[8]uint64, uint32, uint32) {
	hi, _ := bits.Mul64(h, uint64(len(f.blocks)))
	return &f.blocks[hi], uint32(h), uint32(h>>32) | 1
}

func (f *keyFilter) add(key string) { f.set(f.probe(maphash.String(f.seed, key))) }

// addBytes adds the key held in b (maphash hashes a string and its bytes
// alike).
func (f *keyFilter) addBytes(b []byte) { f.set(f.probe(maphash.Bytes(f.seed, b))) }

func (f *keyFilter) set(b *[8]uint64, h1, h2 uint32) {
	for i := range uint32(filterProbes) {
		bit := (h1 + i*h2) & 511
		b[bit>>6] |= 1 << (bit & 63)
	}
	f.n++
}

func (f *keyFilter) mayContain(key string) bool {
	b, h1, h2 := f.probe(maphash.String(f.seed, key))
	for i := range uint32(filterProbes) {
		bit := (h1 + i*h2) & 511
		if b[bit>>6]&(1<<(bit&63)) == 0 {
			return false
		}
	}
	return true
}

// full: past its capacity, so many deleted keys may be in it that it
// should be rebuilt.
func (f *keyFilter) full() bool { return f.n >= f.cap }

// bytes is its size in memory.
func (f *keyFilter) bytes() int { return len(f.blocks) * 64 }
