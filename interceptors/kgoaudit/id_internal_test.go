package kgoaudit

import (
	"regexp"
	"testing"

	"github.com/google/uuid"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewIDIsUUIDv4(t *testing.T) {
	seen := make(map[[idLen]byte]bool)
	for range 10000 {
		var id [idLen]byte
		newID(&id)
		if !uuidV4.Match(id[:]) {
			t.Fatalf("not a canonical UUID v4: %q", id[:])
		}
		u, err := uuid.ParseBytes(id[:])
		if err != nil || u.Version() != 4 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("uuid.ParseBytes(%q) = %v, %v (version %v, variant %v)", id[:], u, err, u.Version(), u.Variant())
		}
		if seen[id] {
			t.Fatalf("duplicate ID %q", id[:])
		}
		seen[id] = true
	}
}

var sinkID string

// BenchmarkNewID compares the generator used here with google/uuid (which
// reads crypto/rand), each ending with the string the event needs.
func BenchmarkNewID(b *testing.B) {
	b.Run("mathrand", func(b *testing.B) {
		b.ReportAllocs()
		var id [idLen]byte
		for b.Loop() {
			newID(&id)
			sinkID = string(id[:])
		}
	})
	b.Run("google-uuid", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkID = uuid.New().String()
		}
	})
}
