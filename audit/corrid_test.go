package audit_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/kaudit/kaudit/audit"
)

func TestIDsAreDistinctV4UUIDs(t *testing.T) {
	const n = 10000
	seen := make(map[string]bool, n)
	for range n {
		s := audit.NewCorrelationID()
		u, err := uuid.Parse(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if u.Version() != 4 || u.Variant() != uuid.RFC4122 || u.String() != s {
			t.Fatalf("%q: version %d variant %v canonical %q", s, u.Version(), u.Variant(), u.String())
		}
		if seen[s] {
			t.Fatalf("duplicate ID %q", s)
		}
		seen[s] = true
	}
}

func TestNewDoesNotAllocate(t *testing.T) {
	var id [audit.CorrelationIDLen]byte
	if n := testing.AllocsPerRun(100, func() { audit.PutCorrelationID(&id) }); n != 0 {
		t.Fatalf("%v allocations, want 0", n)
	}
}
