package correlator

import (
	"strconv"
	"testing"
)

// Every key added is held; of keys never added, at capacity, about 1 %.
func TestKeyFilter(t *testing.T) {
	const n = 100_000
	f := newKeyFilter(n)
	for i := range n {
		if i%2 == 0 {
			f.add("k" + strconv.Itoa(i))
		} else {
			f.addBytes([]byte("k" + strconv.Itoa(i)))
		}
	}
	for i := range n {
		if !f.mayContain("k" + strconv.Itoa(i)) {
			t.Fatalf("k%d added, not held", i)
		}
	}
	if !f.full() {
		t.Error("not full at capacity")
	}
	fp := 0
	for i := range n {
		if f.mayContain("absent-" + strconv.Itoa(i)) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.02 {
		t.Errorf("false positives %.2f %% at capacity, want about 1 %%", rate*100)
	} else {
		t.Logf("false positives %.2f %% at capacity, %d bytes for %d keys", rate*100, f.bytes(), n)
	}
}
