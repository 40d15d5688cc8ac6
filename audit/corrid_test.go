package audit_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kaudit/kaudit/audit"
)

func TestIDsAreDistinctV7UUIDs(t *testing.T) {
	const n = 10000
	seen := make(map[string]bool, n)
	for range n {
		s := audit.NewCorrelationID()
		u, err := uuid.Parse(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if u.Version() != 7 || u.Variant() != uuid.RFC4122 || u.String() != s {
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

// IDs sort by the time they were made: their text begins with the
// milliseconds.
func TestIDsSortByTime(t *testing.T) {
	first := audit.NewCorrelationID()
	time.Sleep(2 * time.Millisecond) // two IDs of different milliseconds
	second := audit.NewCorrelationID()
	if first >= second {
		t.Errorf("%s made before %s sorts after it", first, second)
	}
	u, _ := uuid.Parse(second)
	sec, nsec := u.Time().UnixTime()
	if d := time.Since(time.Unix(sec, nsec)); d < 0 || d > time.Minute {
		t.Errorf("the ID's time is %s ago", d)
	}
}
