package codecs_test

import (
	"encoding/binary"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/kaudit/kaudit/codecs"
)

func TestDigestSeparatesKeyAndValue(t *testing.T) {
	pairs := [][2]string{{"ab", "c"}, {"a", "bc"}, {"", "abc"}, {"abc", ""}, {"", ""}, {"abc", "abc"}}
	seen := map[uint64][2]string{}
	for _, p := range pairs {
		d := codecs.Digest([]byte(p[0]), []byte(p[1]))
		if other, ok := seen[d]; ok {
			t.Errorf("Digest(%q, %q) == Digest(%q, %q)", p[0], p[1], other[0], other[1])
		}
		seen[d] = p
	}
}

func TestDigestDefinition(t *testing.T) {
	key, value := []byte("order-42"), make([]byte, 1000)
	for i := range value {
		value[i] = byte(i * 7)
	}
	// The documented definition, computed in one shot.
	buf := binary.LittleEndian.AppendUint64(nil, uint64(len(key)))
	buf = append(append(buf, key...), value...)
	if got, want := codecs.Digest(key, value), xxhash.Sum64(buf); got != want {
		t.Fatalf("Digest = %#x, want XXH64(le64(len(key))||key||value) = %#x", got, want)
	}
	if codecs.Digest(nil, nil) != codecs.Digest([]byte{}, []byte{}) {
		t.Error("nil and empty hash differently")
	}
	value[999]++
	if codecs.Digest(key, value) == xxhash.Sum64(buf) {
		t.Error("a changed value byte leaves the digest unchanged")
	}
}

func TestDigestDoesNotAllocate(t *testing.T) {
	key, value := []byte("k"), make([]byte, 1024)
	if n := testing.AllocsPerRun(100, func() { _ = codecs.Digest(key, value) }); n != 0 {
		t.Fatalf("Digest: %v allocs, want 0", n)
	}
}
