package correlator

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"slices"

	"github.com/cespare/xxhash/v2"
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
	return &keyFilter{blocks: make([][8]uint64, nblocks), cap: capacity}
}

// probe returns the block of a key's hash and the two halves of its bit
// positions.
func (f *keyFilter) probe(h uint64) (*[8]uint64, uint32, uint32) {
	hi, _ := bits.Mul64(h, uint64(len(f.blocks)))
	return &f.blocks[hi], uint32(h), uint32(h>>32) | 1
}

func (f *keyFilter) add(key string) { f.set(f.probe(xxhash.Sum64String(key))) }

// addBytes adds the key held in b.
func (f *keyFilter) addBytes(b []byte) { f.set(f.probe(xxhash.Sum64(b))) }

func (f *keyFilter) set(b *[8]uint64, h1, h2 uint32) {
	for i := range uint32(filterProbes) {
		bit := (h1 + i*h2) & 511
		b[bit>>6] |= 1 << (bit & 63)
	}
	f.n++
}

func (f *keyFilter) mayContain(key string) bool {
	b, h1, h2 := f.probe(xxhash.Sum64String(key))
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

// A saved filter (tableStorage.saveFilter): filterMagic, capacity, keys
// added, the table files of the store it was saved with, the blocks
// (little endian), and the xxhash of all that.
var filterMagic = []byte("kaudit-keyfilter-1\n")

func (f *keyFilter) marshal(tables []uint64) []byte {
	b := append([]byte(nil), filterMagic...)
	b = binary.AppendUvarint(b, uint64(f.cap))
	b = binary.AppendUvarint(b, uint64(f.n))
	b = binary.AppendUvarint(b, uint64(len(tables)))
	for _, t := range tables {
		b = binary.AppendUvarint(b, t)
	}
	b = slices.Grow(b, len(f.blocks)*64+8)
	for i := range f.blocks {
		for _, w := range f.blocks[i] {
			b = binary.LittleEndian.AppendUint64(b, w)
		}
	}
	return binary.LittleEndian.AppendUint64(b, xxhash.Sum64(b))
}

var errBadFilter = errors.New("not a saved key filter")

// unmarshalKeyFilter returns a saved filter and the table files it was
// saved with.
func unmarshalKeyFilter(b []byte) (*keyFilter, []uint64, error) {
	if len(b) < len(filterMagic)+8 || !bytes.HasPrefix(b, filterMagic) ||
		xxhash.Sum64(b[:len(b)-8]) != binary.LittleEndian.Uint64(b[len(b)-8:]) {
		return nil, nil, errBadFilter
	}
	r := b[len(filterMagic) : len(b)-8]
	next := func() uint64 {
		v, n := binary.Uvarint(r)
		if n <= 0 {
			r = nil
			return 0
		}
		r = r[n:]
		return v
	}
	capacity, added, ntables := next(), next(), next()
	if r == nil || capacity == 0 || capacity > 1<<32 || ntables > uint64(len(r)) {
		return nil, nil, errBadFilter
	}
	tables := make([]uint64, ntables)
	for i := range tables {
		tables[i] = next()
	}
	f := newKeyFilter(int(capacity))
	if r == nil || len(r) != len(f.blocks)*64 {
		return nil, nil, errBadFilter
	}
	f.n = int(added)
	for i := range f.blocks {
		for j := range f.blocks[i] {
			f.blocks[i][j] = binary.LittleEndian.Uint64(r)
			r = r[8:]
		}
	}
	return f, tables, nil
}
