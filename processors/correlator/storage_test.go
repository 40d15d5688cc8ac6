package correlator

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

func openTestStorage(t *testing.T, dir string) (*storages, *tableStorage) {
	t.Helper()
	return openTestStorageWith(t, dir, nil)
}

// openTestStorageWith opens a partition with its storages set by with.
func openTestStorageWith(t *testing.T, dir string, with func(*storages)) (*storages, *tableStorage) {
	t.Helper()
	ss := newStorages(dir, "kaudit-correlator-table")
	if with != nil {
		with(ss)
	}
	st, err := ss.builder()("kaudit-correlator-table", 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Open(); err != nil {
		t.Fatal(err)
	}
	return ss, st.(*tableStorage)
}

func trailDue(id string, due int64, pend ...string) []byte {
	tr := &Trail{CorrelationID: id, NextDueNs: due, Hops: []Hop{{Topic: "orders", Produce: &ProduceFacts{AckNs: due - 100}}}}
	for _, g := range pend {
		tr.Hops[0].Expected = append(tr.Hops[0].Expected, ExpectedGroup{Group: g})
	}
	return AppendTrail(nil, tr)
}

func visit(t *testing.T, ss *storages, st *tableStorage, until int64) []string {
	t.Helper()
	ss.sweepUntil.Store(until)
	defer ss.sweepUntil.Store(0)
	it, err := st.Iterator()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Release()
	var keys []string
	for it.Next() {
		keys = append(keys, string(it.Key()))
		if v, err := it.Value(); err != nil || v == nil {
			t.Errorf("due key %s has no trail (%v)", it.Key(), err)
		}
	}
	return keys
}

// A sweep's iterator yields exactly the trails due by then, in due order;
// moving a trail's due time or deleting it moves or removes its index entry
// in the same batch.
func TestStorageDeadlineIndex(t *testing.T) {
	ss, st := openTestStorage(t, t.TempDir())
	defer st.Close()
	for i, due := range []int64{50, 10, 30, 90} {
		id := fmt.Sprintf("t%d", i)
		if _, err := st.Get(id); err != nil { // the read goka does before a write
			t.Fatal(err)
		}
		if err := st.Set(id, trailDue(id, due)); err != nil {
			t.Fatal(err)
		}
	}
	if got := visit(t, ss, st, 40); !slices.Equal(got, []string{"t1", "t2"}) {
		t.Errorf("due by 40: %v", got)
	}
	// t1 is rescheduled to 70 (a Set without a Get first: no cache), t2 deleted.
	if err := st.Set("t1", trailDue("t1", 70)); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete("t2"); err != nil {
		t.Fatal(err)
	}
	if got := visit(t, ss, st, 80); !slices.Equal(got, []string{"t0", "t1"}) {
		t.Errorf("due by 80: %v", got)
	}
	if st.trails.Load() != 3 {
		t.Errorf("trails %d, want 3", st.trails.Load())
	}
	// Outside a sweep the iterator is the whole table.
	it, _ := st.Iterator()
	n := 0
	for it.Next() {
		n++
	}
	it.Release()
	if n != 3 {
		t.Errorf("%d trails iterated, want 3", n)
	}
}

// The oldest-unconsumed index gives, per topic and group, the earliest ack
// among the trails whose expected group has not consumed.
func TestStorageOldestPending(t *testing.T) {
	_, st := openTestStorage(t, t.TempDir())
	defer st.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(st.Set("a", trailDue("a", 1000, "billing", "search")))
	must(st.Set("b", trailDue("b", 500, "billing")))
	must(st.Set("c", trailDue("c", 2000, "search")))
	got := map[[2]string]int64{}
	must(st.oldestPending(got))
	want := map[[2]string]int64{{"orders", "billing"}: 400, {"orders", "search"}: 900}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("oldest %v, want %v", got, want)
	}
	// b's billing consumed: its pending entry goes.
	tr := &Trail{CorrelationID: "b", NextDueNs: 500, Hops: []Hop{{Topic: "orders", Produce: &ProduceFacts{AckNs: 400},
		Expected: []ExpectedGroup{{Group: "billing"}}, Groups: []GroupFacts{{Group: "billing", Count: 1}}}}}
	must(st.Set("b", AppendTrail(nil, tr)))
	got = map[[2]string]int64{}
	must(st.oldestPending(got))
	if got[[2]string{"orders", "billing"}] != 900 {
		t.Errorf("after b consumed: %v", got)
	}
}

// The store survives a reopen with its trails, indexes and offset (what a
// restart on the same state directory finds).
func TestStorageReopen(t *testing.T) {
	dir := t.TempDir()
	ss, st := openTestStorage(t, dir)
	if err := st.Set("x", trailDue("x", 10)); err != nil {
		t.Fatal(err)
	}
	if err := st.SetOffset(41); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	ss, st = openTestStorage(t, dir)
	if off, err := st.GetOffset(-1); err != nil || off != 41 {
		t.Errorf("offset %d (%v)", off, err)
	}
	if got := visit(t, ss, st, 20); !slices.Equal(got, []string{"x"}) {
		t.Errorf("due after reopen: %v", got)
	}
	for deadline := time.Now().Add(5 * time.Second); st.trails.Load() != 1 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond) // the count runs in the background
	}
	if st.trails.Load() != 1 {
		t.Errorf("trails %d after reopen", st.trails.Load())
	}
	// A table stored before its count was: counted at Open, in the
	// background, then stored with the next flush.
	if err := st.db.Delete(countsKey, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := st.Set("y", trailDue("y", 10)); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	_, st = openTestStorage(t, dir)
	for deadline := time.Now().Add(5 * time.Second); st.trails.Load() != 2 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if st.trails.Load() != 2 {
		t.Errorf("trails %d after a reopen without a stored count, want 2", st.trails.Load())
	}
	for deadline := time.Now().Add(5 * time.Second); !st.counted.Load() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if err := st.Set("z", trailDue("z", 10)); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	_, st = openTestStorage(t, dir)
	defer st.Close()
	if !st.counted.Load() || st.trails.Load() != 3 {
		t.Errorf("stored count %d (known %v) after the flush, want 3", st.trails.Load(), st.counted.Load())
	}
}

// gate releases input messages in their order, whatever order their
// records are acknowledged in, and passes on the first error.
func TestGateReleasesInOrder(t *testing.T) {
	g := &gate{}
	var released []int
	var errs []error
	mk := func(i, left int) *inflight {
		f := &inflight{left: left, release: func(err error) { released = append(released, i); errs = append(errs, err) }}
		g.q = append(g.q, f)
		return f
	}
	ack := func(f *inflight, err error) {
		g.mu.Lock()
		f.left--
		if err != nil && f.err == nil {
			f.err = err
		}
		g.mu.Unlock()
		g.drain()
	}
	seal := func(f *inflight) {
		g.mu.Lock()
		f.sealed = true
		g.mu.Unlock()
		g.drain()
	}
	a, b, c := mk(0, 1), mk(1, 2), mk(2, 0)
	seal(c)
	seal(b)
	ack(b, nil)
	ack(b, errors.New("boom"))
	if len(released) != 0 {
		t.Fatalf("released %v before the first message was acknowledged", released)
	}
	seal(a)
	ack(a, nil)
	if !slices.Equal(released, []int{0, 1, 2}) {
		t.Fatalf("released %v, want 0 1 2", released)
	}
	if errs[0] != nil || errs[1] == nil || errs[2] != nil {
		t.Errorf("errors %v", errs)
	}
}

// Writes are held back and flushed in batches (write-back): whatever the
// mix of sets and deletes, across flushes, sweeps and reopens (one of them
// of a table stored without its counts), every read, the whole-table
// iterator, the deadline index, the trail count and the lag report's
// pending counts and oldest acks agree with a plain map of what was
// written.
func TestStorageWriteBackMatchesModel(t *testing.T) {
	type entry struct {
		due    int64
		groups []string
	}
	dir := t.TempDir()
	// Key filters small enough to fill and be rebuilt (from scans running
	// while the trails are written) many times over.
	small := func(ss *storages) { ss.filterMin, ss.filterMax = 512, 4096 }
	ss, st := openTestStorageWith(t, dir, small)
	defer func() { _ = st.Close() }()
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[string]entry{}
	filtered, rebuilt := 0, 0 // checks made with a filter in use, filters seen replaced
	var lastFilter *keyFilter
	check := func(when string) {
		t.Helper()
		st.fmu.Lock()
		if st.filter != nil {
			filtered++
			if lastFilter != nil && st.filter != lastFilter {
				rebuilt++
			}
			lastFilter = st.filter
		}
		st.fmu.Unlock()
		for i := range 3000 {
			id := fmt.Sprintf("k%04d", i)
			v, err := st.Get(id)
			if err != nil {
				t.Fatal(err)
			}
			e, want := model[id]
			if (v != nil) != want {
				t.Fatalf("%s: Get(%s) = %d bytes, stored %v", when, id, len(v), want)
			}
			if want && !bytes.Equal(v, trailDue(id, e.due, e.groups...)) {
				t.Fatalf("%s: Get(%s) is not the value last written", when, id)
			}
		}
		var wantDue []string
		wantPending := map[[2]string]pendingStat{}
		for id, e := range model {
			if e.due <= 5000 {
				wantDue = append(wantDue, id)
			}
			for _, g := range e.groups {
				k := [2]string{"orders", g}
				p, seen := wantPending[k]
				if !seen || e.due-100 < p.oldestAckNs {
					p.oldestAckNs = e.due - 100
				}
				p.count++
				wantPending[k] = p
			}
		}
		slices.SortFunc(wantDue, func(a, b string) int {
			if c := cmp.Compare(model[a].due, model[b].due); c != 0 {
				return c
			}
			return strings.Compare(a, b)
		})
		if got := visit(t, ss, st, 5000); !slices.Equal(got, wantDue) {
			t.Fatalf("%s: %d due by 5000, want %d", when, len(got), len(wantDue))
		}
		it, err := st.Iterator()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for it.Next() {
			if _, ok := model[string(it.Key())]; !ok {
				t.Fatalf("%s: iterator yields %s, deleted", when, it.Key())
			}
			n++
		}
		it.Release()
		if n != len(model) {
			t.Fatalf("%s: iterator yields %d trails, want %d", when, n, len(model))
		}
		if st.trails.Load() != int64(len(model)) {
			t.Fatalf("%s: trail count %d, want %d", when, st.trails.Load(), len(model))
		}
		gotPending := map[[2]string]pendingStat{}
		if err := st.pendingStats(gotPending); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(gotPending) != fmt.Sprint(wantPending) {
			t.Fatalf("%s: pending %v, want %v", when, gotPending, wantPending)
		}
	}
	reopen := func() {
		t.Helper()
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		ss, st = openTestStorageWith(t, dir, small)
		lastFilter = nil
		for deadline := time.Now().Add(5 * time.Second); !st.counted.Load() && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond) // an older table is counted in the background
		}
	}
	for round := range 6 {
		for i := range 2 * flushEntries {
			if i%(flushEntries/4) == 0 {
				check(fmt.Sprintf("round %d, write %d", round, i))
			}
			id := fmt.Sprintf("k%04d", rng.IntN(3000))
			if rng.IntN(4) == 0 {
				if err := st.Delete(id); err != nil {
					t.Fatal(err)
				}
				delete(model, id)
				continue
			}
			e := entry{due: rng.Int64N(10000) + 1000}
			for _, g := range []string{"billing", "search"} {
				if rng.IntN(2) == 0 {
					e.groups = append(e.groups, g)
				}
			}
			if err := st.Set(id, trailDue(id, e.due, e.groups...)); err != nil {
				t.Fatal(err)
			}
			model[id] = e
		}
		check(fmt.Sprintf("round %d", round))
		switch round {
		case 1, 5:
			reopen()
			check(fmt.Sprintf("round %d, reopened", round))
		case 3: // a table stored before its counts were
			if err := st.db.Delete(countsKey, pebble.NoSync); err != nil {
				t.Fatal(err)
			}
			reopen()
			check(fmt.Sprintf("round %d, reopened without stored counts", round))
		}
	}
	if filtered == 0 || rebuilt == 0 {
		t.Errorf("checks with a key filter in use %d, filters rebuilt %d: the filter went untested", filtered, rebuilt)
	}
}

// The key filter saved at Close is used by the next Open only if the store
// holds what it held then: a trail another writer stored meanwhile (an
// older kaudit, a restore) must still be found, and a damaged file is
// ignored.
func TestStorageKeyFilterSaved(t *testing.T) {
	dir := t.TempDir()
	_, st := openTestStorage(t, dir)
	for i := range 100 {
		id := fmt.Sprintf("saved-%d", i)
		if err := st.Set(id, trailDue(id, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(st.filterPath()); err != nil {
		t.Fatalf("no filter saved at Close: %v", err)
	}

	// A clean reopen uses it at once (no scan), and it is loaded once.
	_, st = openTestStorage(t, dir)
	st.fmu.Lock()
	loaded := st.filter != nil && st.building == nil
	st.fmu.Unlock()
	if !loaded {
		t.Error("the saved filter is not in use after a clean reopen")
	}
	if _, err := os.Stat(st.filterPath()); !os.IsNotExist(err) {
		t.Errorf("the saved filter is still there after Open: %v", err)
	}
	for i := range 100 {
		if v, err := st.Get(fmt.Sprintf("saved-%d", i)); err != nil || v == nil {
			t.Fatalf("saved-%d not found after reopen (%v)", i, err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// Another writer stores a trail after the close, then this storage opens.
	saved, err := os.ReadFile(st.filterPath())
	if err != nil {
		t.Fatal(err)
	}
	db, err := pebble.Open(st.path, &pebble.Options{DisableWAL: true, Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Set(dataKey("foreign"), trailDue("foreign", 10), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil { // a new table file (without a WAL, unflushed writes die with the process)
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, st = openTestStorage(t, dir)
	if v, err := st.Get("foreign"); err != nil || v == nil {
		t.Errorf("a trail stored by another writer after the filter was saved is not found (%v)", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// A damaged file is ignored.
	saved[len(saved)/2] ^= 0xff
	if _, _, err := unmarshalKeyFilter(saved); err == nil {
		t.Error("a damaged filter file is accepted")
	}
	if err := os.WriteFile(st.filterPath(), saved, 0o600); err != nil {
		t.Fatal(err)
	}
	_, st = openTestStorage(t, dir)
	defer st.Close()
	if v, err := st.Get("foreign"); err != nil || v == nil {
		t.Errorf("not found with a damaged filter file (%v)", err)
	}
}

// The partitions share one block cache, made when the first opens and
// given back when the last closes (a correlator used to leak its 256 MB
// cache at every stop); a partition opened after that gets a new one.
func TestBlockCacheReleasedWithTheLastPartition(t *testing.T) {
	dir := t.TempDir()
	ss := newStorages(dir, "table")
	open := func(p int32) *tableStorage {
		st, err := ss.builder()("table", p)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Open(); err != nil {
			t.Fatal(err)
		}
		return st.(*tableStorage)
	}
	a, b := open(0), open(1)
	if ss.cache == nil || ss.dbs != 2 {
		t.Fatalf("two partitions open: cache %p, %d holders", ss.cache, ss.dbs)
	}
	first := ss.cache
	if err := a.Set("k", trailDue("k", 5)); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if ss.cache != first {
		t.Fatal("the cache went with the first partition closed, the second still uses it")
	}
	if v, err := b.Get("x"); err != nil || v != nil {
		t.Fatalf("the open partition after the other closed: %q, %v", v, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if ss.cache != nil || ss.dbs != 0 {
		t.Fatalf("every partition closed: cache %p, %d holders", ss.cache, ss.dbs)
	}
	a = open(0)
	if v, err := a.Get("k"); err != nil || !bytes.Equal(v, trailDue("k", 5)) {
		t.Fatalf("reopened with a new cache: %q, %v", v, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// A partition that cannot open gives its share back.
	// (a store whose CURRENT names a manifest that is not there).
	if err := os.MkdirAll(dir+"/bad", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/bad/CURRENT", []byte("MANIFEST-000099\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := &tableStorage{owner: ss, partition: 9, path: dir + "/bad"}
	if err := bad.Open(); err == nil {
		t.Fatal("opened a store without its manifest")
	}
	if ss.cache != nil || ss.dbs != 0 {
		t.Fatalf("after a failed open: cache %p, %d holders", ss.cache, ss.dbs)
	}
}
