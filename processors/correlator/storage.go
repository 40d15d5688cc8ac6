package correlator

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/lovoo/goka/storage"
)

// The correlator's group table lives in Pebble, one database per table
// partition, with two indexes kept in the same atomic batch as every trail
// write, so they can never disagree with the trails (after a crash, a
// restart, or a recovery from the changelog, which writes through the same
// Set):
//
//	0x00 key                                    → trail (the stored value)
//	0x01 next_due (8 bytes BE) key               → ∅   the deadline index
//	0x02 topic 0x00 group 0x00 ack (8 BE) key    → ∅   the oldest-unconsumed index
//	0x03 "offset"                                → the changelog offset (decimal)
//	0x03 "counts"                                → the trails and the 0x02 entries per topic and group (JSON)
//
// Both index entries are read from the value's header (trail.proto), never
// by decoding the trail.
//
// The databases run without a write-ahead log. They need none: the table's
// changelog topic is what makes the table durable. After a crash, Pebble
// comes back as of its last memtable flush — the trails, their indexes and
// the stored changelog offset all of one instant, since they are written
// in the same batches — and goka reads the changelog from that offset on,
// before any input is processed. This spares a write syscall per event.
//
// The first event of a message looks for a trail that does not exist; a
// key filter per partition (keyfilter.go), a superset of the stored keys
// kept in memory, answers most of those lookups without Pebble.
//
// goka visits a table by iterating its storage (Processor.VisitAll), and the
// correlator's sweep is the only visitor: while a sweep runs, Iterator
// yields only the keys whose next due time has passed, in due order, so a
// sweep costs what is due, not the size of the table.
const (
	nsData    = 0x00
	nsDue     = 0x01
	nsPending = 0x02
	nsOffset  = 0x03
)

var (
	offsetKey = []byte{nsOffset, 'o', 'f', 'f', 's', 'e', 't'}
	countsKey = []byte{nsOffset, 'c', 'o', 'u', 'n', 't', 's'}
)

var errClosed = errors.New("correlator storage: closed")

// storages builds and tracks the table storages of one correlator.
type storages struct {
	dir   string
	table string // the group-table topic; other topics (lookups) get memory storage
	// sweepUntil is non-zero while a sweep runs: the storages' iterators
	// then yield the trails due at or before it.
	sweepUntil atomic.Int64

	mu   sync.Mutex
	open map[int32]*tableStorage
	// base holds the options every partition is opened with; cache is the
	// block cache they share, made when the first opens and released when
	// the last closes (dbs counts them): Pebble holds a reference of its
	// own per database, and the one made here would otherwise be leaked
	// by every correlator (256 MB once filled).
	base  pebble.Options
	cache *pebble.Cache
	dbs   int
	// log gets what the storages cannot return (a key filter not saved).
	log *slog.Logger
	// filterMin and filterMax bound the keys a partition's key filter is
	// sized for (filterMax × 10 bits: 20 MB); a partition holding more
	// than half of filterMax trails does without.
	filterMin, filterMax int
}

// blockCache is the size of the block cache the partitions of one
// correlator share.
const blockCache = 256 << 20

func newStorages(dir, table string) *storages {
	s := &storages{dir: dir, table: table, open: map[int32]*tableStorage{}, filterMin: 1 << 20, filterMax: 16 << 20,
		log: slog.New(slog.DiscardHandler)}
	s.base = pebble.Options{
		Logger:       quietLogger{},
		DisableWAL:   true,
		MemTableSize: 64 << 20,
		// A large first level below L0: a table of a few GB per partition
		// then lives in L0 and one level, and new trails (time-ordered
		// IDs) are compacted into it without rewriting the levels below.
		// With Pebble's 64 MB default, 10 M open trails halved the
		// correlator's throughput (compactions took half its CPU); with
		// this, 0.9× the empty table's (BenchmarkCorrelatorScale).
		LBaseMaxBytes: 1 << 30,
	}
	for i := range s.base.Levels {
		s.base.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		s.base.Levels[i].FilterType = pebble.TableFilter
	}
	return s
}

// options are the Pebble options of a table partition: no WAL (see above),
// a larger memtable (64 MB: the events of a message arrive close together,
// so the trails they touch are mostly still in it; Pebble grows a
// partition's memtables to that size only as it writes), a 1 GB base
// level, bloom filters on every level (most reads of a new message's first
// event find nothing), and the shared block cache. Every call is matched
// by a release.
func (s *storages) options(partition int32) *pebble.Options {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cache == nil {
		s.cache = pebble.NewCache(blockCache)
	}
	s.dbs++
	o := s.base
	o.Cache = s.cache
	o.EventListener = s.events(partition)
	return &o
}

// events logs what Pebble does in the background that can hold the
// partition's events or sweeps up: a write stall (a Warn: the partition
// waits for a flush or compaction), and at Debug every flush and
// compaction with its time.
func (s *storages) events(partition int32) *pebble.EventListener {
	log := s.log.With("partition", partition)
	var stalled time.Time
	return &pebble.EventListener{
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			stalled = time.Now()
			log.Warn("correlator storage: writes stalled", "reason", info.Reason)
		},
		WriteStallEnd: func() {
			log.Info("correlator storage: writes resumed", "stalled", time.Since(stalled).Round(time.Millisecond))
		},
		FlushEnd: func(info pebble.FlushInfo) {
			var size uint64
			for _, t := range info.Output {
				size += t.Size
			}
			log.Debug("correlator storage: flushed", "took", info.TotalDuration.Round(time.Millisecond), "bytes", size, "err", info.Err)
		},
		CompactionEnd: func(info pebble.CompactionInfo) {
			log.Debug("correlator storage: compacted", "took", info.TotalDuration.Round(time.Millisecond), "reason", info.Reason, "err", info.Err)
		},
	}
}

// release gives back what options took, once the database opened with it
// is closed (or failed to open).
func (s *storages) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dbs--; s.dbs == 0 && s.cache != nil {
		s.cache.Unref()
		s.cache = nil
	}
}

// builder is the goka storage builder.
func (s *storages) builder() storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		if topic != s.table {
			// Lookup tables (expectations, learner) are small and kept in
			// memory, recovered from their topics at every start.
			return storage.NewMemory(), nil
		}
		path := filepath.Join(s.dir, topic+"."+strconv.Itoa(int(partition)))
		return &tableStorage{owner: s, partition: partition, path: path}, nil
	}
}

// each calls f for every open storage.
func (s *storages) each(f func(*tableStorage)) {
	s.mu.Lock()
	list := make([]*tableStorage, 0, len(s.open))
	for _, st := range s.open {
		list = append(list, st)
	}
	s.mu.Unlock()
	for _, st := range list {
		f(st)
	}
}

// tableStorage is one partition of the group table.
type tableStorage struct {
	owner     *storages
	partition int32
	path      string
	trails    atomic.Int64 // trails stored
	// pendings counts the oldest-unconsumed index's entries per topic and
	// group (the lag report's counts, without scanning the index); guarded
	// by wmu. It and trails are stored with every flush (countsKey), so
	// always of the same instant as the trails stored with them.
	pendings map[[2]string]int64
	// counted: trails and pendings hold the whole counts, not only the
	// changes since Open while an older table is counted.
	counted atomic.Bool

	// mu guards db: goka may close a partition's storage (a rebalance)
	// while a sweep opens an iterator on it; every use after Close fails
	// with errClosed instead of reaching a closed Pebble. iters counts the
	// open iterators, which Close waits for.
	mu    sync.RWMutex
	db    *pebble.DB
	iters sync.WaitGroup

	// offset is the changelog offset goka last set; it is written with
	// the next trail write (and at Close), not on its own: a stored offset
	// that lags only makes a recovery read a few more changelog records.
	offset      atomic.Int64
	offsetDirty atomic.Bool

	// recent holds the values of the trails read or flushed last (bounded,
	// oldest first out), as Pebble holds them: the events of one message
	// arrive close together, so most reads find their trail here instead
	// of in Pebble, and a write finds the old value to replace its index
	// entries.
	cacheMu sync.Mutex
	recent  map[string][]byte
	ring    []string
	next    int

	// wmu guards dirty, the trails written since the last flush, and wb,
	// the batch every flush reuses. Writes go to dirty (write-back) and
	// reach Pebble together, one batch every flushEntries trails or
	// flushBytes bytes, before any iterator opens and at Close: the events
	// of one message are then one Pebble write, not one each, and a trail
	// written and deleted between two flushes never reaches Pebble at all.
	// It costs no durability: Pebble runs without a WAL and the changelog
	// makes the table durable (above); a crash loses the dirty trails with
	// the memtable, and the offset stored with the last flush is where
	// goka's recovery reads the changelog from.
	wmu        sync.Mutex
	dirty      map[string]*change
	dirtyBytes int
	wb         *pebble.Batch
	// The keys a flush writes are built in these (under wmu).
	oldKeys, newKeys indexScratch
	dataKey          []byte

	// fmu guards filter, a superset of the stored trail keys (nil while
	// the first is built, and for good past the storages' filterMax), and
	// building, the filter being built from a scan of the table: every
	// flush adds its keys to both before they reach Pebble, so a key
	// Pebble holds is always in filter. A key filter does not hold is not
	// looked up.
	fmu      sync.Mutex
	filter   *keyFilter
	building *keyFilter
	// closing stops a filter scan, which would hold Close up.
	closing atomic.Bool
}

// change is a trail written since the last flush: its value in Pebble
// (base, nil if none) and now (cur, nil if deleted).
type change struct {
	base, cur []byte
}

// A flush is due after this many written trails or bytes of them.
const (
	flushEntries = 8192
	flushBytes   = 16 << 20
)

// recentCap is how many trails each partition keeps in memory.
const recentCap = 16384

// absent marks in the cache a key known not to be stored (a stored value
// is never empty: it starts with the trail header). The first event of a
// message finds no trail, and so does the write that follows its read:
// without this, each is a Pebble lookup through every level.
var absent = []byte{}

func (st *tableStorage) cached(key string) ([]byte, bool) {
	st.cacheMu.Lock()
	defer st.cacheMu.Unlock()
	v, ok := st.recent[key]
	return v, ok
}

func (st *tableStorage) remember(key string, v []byte) {
	st.cacheMu.Lock()
	defer st.cacheMu.Unlock()
	if st.recent == nil {
		st.recent = make(map[string][]byte, recentCap)
		st.ring = make([]string, recentCap)
	}
	if _, ok := st.recent[key]; !ok {
		if old := st.ring[st.next]; old != "" {
			delete(st.recent, old)
		}
		st.ring[st.next] = key
		st.next = (st.next + 1) % recentCap
	}
	st.recent[key] = v
}

var _ storage.Storage = (*tableStorage)(nil)

func dataKey(key string) []byte {
	b := make([]byte, 1+len(key))
	b[0] = nsData
	copy(b[1:], key)
	return b
}

func dueKey(due int64, key string) []byte { return appendDueKey(nil, due, key) }

func appendDueKey(b []byte, due int64, key string) []byte {
	b = append(b, nsDue)
	b = binary.BigEndian.AppendUint64(b, uint64(max(due, 0)))
	return append(b, key...)
}

func pendingKey(p pending, key string) []byte {
	return appendPendingKey(make([]byte, 0, 1+len(p.topic)+1+len(p.group)+1+8+len(key)), p.topic, p.group, p.ackNs, key)
}

func appendPendingKey[S string | []byte](b []byte, topic, group S, ackNs int64, key string) []byte {
	b = append(b, nsPending)
	b = append(b, topic...)
	b = append(b, 0)
	b = append(b, group...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(max(ackNs, 0)))
	return append(b, key...)
}

// Open implements storage.Storage.
func (st *tableStorage) Open() error {
	if err := os.MkdirAll(st.path, 0o700); err != nil {
		return fmt.Errorf("correlator storage: %w", err)
	}
	db, err := pebble.Open(st.path, st.owner.options(st.partition))
	if err != nil {
		st.owner.release()
		return fmt.Errorf("correlator storage: open %s: %w", st.path, err)
	}
	st.mu.Lock()
	st.db = db
	st.mu.Unlock()
	st.closing.Store(false)
	if err := st.loadCounts(); err != nil {
		_ = st.Close()
		return err
	}
	f := st.loadFilter(db)
	st.fmu.Lock()
	st.filter, st.building = f, nil
	st.fmu.Unlock()
	if f == nil {
		if err := st.buildFilter(); err != nil {
			_ = st.Close()
			return err
		}
	}
	st.owner.mu.Lock()
	st.owner.open[st.partition] = st
	st.owner.mu.Unlock()
	return nil
}

// storedCounts is the record under countsKey; Pending's keys are topic
// 0x00 group.
type storedCounts struct {
	Trails  int64            `json:"trails"`
	Pending map[string]int64 `json:"pending"`
}

// loadCounts reads the stored counts; a table written before they were
// stored is counted in the background, on the iterator's snapshot of this
// instant: writes from then on add to the counts on their own, so the sums
// are right once the count is in (a table of 10 M trails takes seconds to
// count, and goka waits for Open).
func (st *tableStorage) loadCounts() error {
	st.wmu.Lock()
	st.pendings = map[[2]string]int64{}
	st.wmu.Unlock()
	v, err := st.get(countsKey)
	if err != nil {
		return fmt.Errorf("correlator storage: counts %s: %w", st.path, err)
	}
	var c storedCounts
	if v != nil && json.Unmarshal(v, &c) == nil {
		st.wmu.Lock()
		for k, n := range c.Pending {
			topic, group, _ := strings.Cut(k, "\x00")
			st.pendings[[2]string{topic, group}] = n
		}
		st.wmu.Unlock()
		st.trails.Store(c.Trails)
		st.counted.Store(true)
		return nil
	}
	it, err := st.newIter(&pebble.IterOptions{LowerBound: []byte{nsData}, UpperBound: []byte{nsPending + 1}})
	if err != nil {
		return fmt.Errorf("correlator storage: counts %s: %w", st.path, err)
	}
	go func() {
		defer st.releaseIter(it)
		var trails int64
		pending := map[[2]string]int64{}
		for ok := it.First(); ok; {
			k := it.Key()
			switch {
			case k[0] == nsDue: // as many entries as trails: skip them
				ok = it.SeekGE([]byte{nsPending})
				continue
			case k[0] == nsData:
				trails++
			default:
				if id, _, valid := parsePendingKey(k); valid {
					pending[id]++
				}
			}
			ok = it.Next()
		}
		if it.Error() != nil {
			return // counted again at the next Open
		}
		st.wmu.Lock()
		for id, n := range pending {
			st.pendings[id] += n
		}
		st.wmu.Unlock()
		st.trails.Add(trails)
		st.counted.Store(true)
	}()
	return nil
}

// encodeCounts is the record stored under countsKey; the caller holds wmu.
func (st *tableStorage) encodeCounts() []byte {
	c := storedCounts{Trails: st.trails.Load(), Pending: make(map[string]int64, len(st.pendings))}
	for id, n := range st.pendings {
		c.Pending[id[0]+"\x00"+id[1]] = n
	}
	b, _ := json.Marshal(&c) // numbers and strings always encode
	return b
}

// countPending adds d to the count of k's topic and group if k is a
// pending entry; the caller holds wmu.
func (st *tableStorage) countPending(k []byte, d int64) {
	id, _, ok := parsePendingKey(k)
	if !ok {
		return
	}
	if n := st.pendings[id] + d; n != 0 {
		st.pendings[id] = n
	} else {
		delete(st.pendings, id)
	}
}

// parsePendingKey returns the topic and group and the ack time of a
// pending entry's key.
func parsePendingKey(key []byte) (id [2]string, ackNs int64, ok bool) {
	if len(key) == 0 || key[0] != nsPending {
		return id, 0, false
	}
	k := key[1:]
	i := bytes.IndexByte(k, 0)
	if i < 0 {
		return id, 0, false
	}
	j := bytes.IndexByte(k[i+1:], 0)
	if j < 0 || len(k) < i+1+j+1+8 {
		return id, 0, false
	}
	return [2]string{string(k[:i]), string(k[i+1 : i+1+j])}, int64(binary.BigEndian.Uint64(k[i+1+j+1:])), true
}

// Close implements storage.Storage.
func (st *tableStorage) Close() error {
	st.owner.mu.Lock()
	if st.owner.open[st.partition] == st {
		delete(st.owner.open, st.partition)
	}
	st.owner.mu.Unlock()
	// Without a WAL, what is not flushed is gone at Close: flush, so that a
	// clean stop (a rebalance, a shutdown) needs no recovery afterwards.
	flushErr := st.flush()
	st.closing.Store(true)
	st.mu.Lock()
	db := st.db
	st.db = nil
	st.mu.Unlock()
	if db == nil {
		return nil
	}
	defer st.owner.release() // after db.Close, which returns Pebble's own reference
	waited := make(chan struct{})
	go func() { st.iters.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("correlator storage: close %s: iterators still open after 30s", st.path)
	}
	if flushErr != nil {
		_ = db.Close()
		return flushErr
	}
	st.wmu.Lock()
	if st.wb != nil {
		_ = st.wb.Close()
		st.wb = nil
	}
	st.wmu.Unlock()
	if err := st.writeOffset(db); err != nil {
		_ = db.Close()
		return fmt.Errorf("correlator storage: write offset %s: %w", st.path, err)
	}
	if err := db.Flush(); err != nil {
		_ = db.Close()
		return fmt.Errorf("correlator storage: flush %s: %w", st.path, err)
	}
	st.saveFilter(db)
	if err := db.Close(); err != nil {
		return fmt.Errorf("correlator storage: close %s: %w", st.path, err)
	}
	return nil
}

// read runs f with the open database, or fails with errClosed.
func (st *tableStorage) read(f func(db *pebble.DB) error) error {
	st.mu.RLock()
	defer st.mu.RUnlock()
	if st.db == nil {
		return errClosed
	}
	return f(st.db)
}

// Has implements storage.Storage.
func (st *tableStorage) Has(key string) (bool, error) {
	v, err := st.Get(key)
	return v != nil, err
}

// Get implements storage.Storage. The value returned must not be
// modified (goka only decodes it).
func (st *tableStorage) Get(key string) ([]byte, error) {
	st.wmu.Lock()
	ch, ok := st.dirty[key]
	st.wmu.Unlock()
	if ok {
		return ch.cur, nil
	}
	v, err := st.stored(key)
	if err != nil {
		return nil, fmt.Errorf("correlator storage: get: %w", err)
	}
	return v, nil
}

// stored returns the value of key in Pebble, from the cache if it is
// there, and caches it.
func (st *tableStorage) stored(key string) ([]byte, error) {
	if v, ok := st.cached(key); ok {
		if len(v) == 0 {
			return nil, nil
		}
		return v, nil
	}
	if !st.mayBeStored(key) {
		st.remember(key, absent)
		return nil, nil
	}
	v, err := st.get(dataKey(key))
	if err != nil {
		return nil, err
	}
	if v == nil {
		st.remember(key, absent)
	} else {
		st.remember(key, v)
	}
	return v, nil
}

func (st *tableStorage) get(k []byte) ([]byte, error) {
	var out []byte
	err := st.read(func(db *pebble.DB) error {
		v, closer, err := db.Get(k)
		if errors.Is(err, pebble.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		out = bytes.Clone(v)
		return closer.Close()
	})
	return out, err
}

// put records value (nil: deleted) as key's new value, to be flushed, and
// flushes when enough has been written.
func (st *tableStorage) put(key string, value []byte) error {
	st.wmu.Lock()
	defer st.wmu.Unlock()
	ch, ok := st.dirty[key]
	if !ok {
		base, err := st.stored(key)
		if err != nil {
			return err
		}
		ch = &change{base: base, cur: base}
		if st.dirty == nil {
			st.dirty = make(map[string]*change, flushEntries)
		}
		st.dirty[key] = ch
	}
	switch {
	case ch.cur == nil && value != nil:
		st.trails.Add(1)
	case ch.cur != nil && value == nil:
		st.trails.Add(-1)
	}
	st.dirtyBytes += len(value) - len(ch.cur)
	ch.cur = value
	if len(st.dirty) >= flushEntries || st.dirtyBytes >= flushBytes {
		return st.flushLocked()
	}
	return nil
}

// flush writes the dirty trails to Pebble.
func (st *tableStorage) flush() error {
	st.wmu.Lock()
	defer st.wmu.Unlock()
	return st.flushLocked()
}

// flushLocked writes the dirty trails, their index entries and the
// pending offset in one batch; the caller holds wmu.
func (st *tableStorage) flushLocked() error {
	if len(st.dirty) == 0 {
		return nil
	}
	pendings := maps.Clone(st.pendings) // restored if the batch fails: the changes stay dirty
	st.filterAdd()
	err := st.read(func(db *pebble.DB) error {
		if st.wb == nil {
			st.wb = db.NewBatch()
		}
		b := st.wb
		defer b.Reset()
		for key, ch := range st.dirty {
			if ch.base == nil && ch.cur == nil {
				continue // written and deleted since the last flush
			}
			oldKeys, newKeys := st.oldKeys.of(key, ch.base), st.newKeys.of(key, ch.cur)
			for _, k := range oldKeys {
				if !containsKey(newKeys, k) {
					_ = b.Delete(k, nil)
					st.countPending(k, -1)
				}
			}
			for _, k := range newKeys {
				if !containsKey(oldKeys, k) {
					_ = b.Set(k, nil, nil)
					st.countPending(k, 1)
				}
			}
			st.dataKey = append(append(st.dataKey[:0], nsData), key...) // the batch copies keys
			if ch.cur == nil {
				_ = b.Delete(st.dataKey, nil)
			} else {
				_ = b.Set(st.dataKey, ch.cur, nil)
			}
		}
		st.addOffset(b)
		if st.counted.Load() {
			_ = b.Set(countsKey, st.encodeCounts(), nil)
		}
		return b.Commit(pebble.NoSync)
	})
	if err != nil {
		st.pendings = pendings
		return fmt.Errorf("correlator storage: flush: %w", err)
	}
	for key, ch := range st.dirty {
		if ch.cur == nil {
			st.remember(key, absent)
		} else {
			st.remember(key, ch.cur)
		}
	}
	clear(st.dirty)
	st.dirtyBytes = 0
	return st.rebuildFilterIfFull()
}

// indexKeys returns the index entries of a stored value.
func indexKeys(key string, value []byte) [][]byte {
	var ks indexScratch
	return ks.of(key, value)
}

// indexScratch builds the index entries of stored values in reused
// memory (a flush computes two sets per trail written).
type indexScratch struct {
	buf  []byte
	keys [][]byte
}

// of returns the index entries of a stored value, valid until the next
// call.
func (ks *indexScratch) of(key string, value []byte) [][]byte {
	ks.buf, ks.keys = ks.buf[:0], ks.keys[:0]
	if len(value) == 0 {
		return nil
	}
	// Each key is appended to buf and sliced from it; when buf grows, the
	// keys already made keep the old array, unchanged.
	add := func(from int) { ks.keys = append(ks.keys, ks.buf[from:len(ks.buf):len(ks.buf)]) }
	due, _, err := walkHeader(value, func(topic, group []byte, ackNs int64) {
		from := len(ks.buf)
		ks.buf = appendPendingKey(ks.buf, topic, group, ackNs, key)
		add(from)
	})
	if err != nil {
		// An older format: decode it to index it by its deadline.
		var t Trail
		if UnmarshalTrail(value, &t) != nil {
			return nil
		}
		ks.buf, ks.keys = ks.buf[:0], ks.keys[:0]
		due = t.NextDueNs
	}
	from := len(ks.buf)
	ks.buf = appendDueKey(ks.buf, due, key)
	add(from)
	return ks.keys
}

// Set implements storage.Storage: the trail and its index entries reach
// Pebble in one batch, at the next flush.
func (st *tableStorage) Set(key string, value []byte) error {
	if len(value) == 0 {
		value = nil // no trail is empty: read as absent, like a delete
	}
	if err := st.put(key, value); err != nil {
		return fmt.Errorf("correlator storage: set: %w", err)
	}
	return nil
}

func containsKey(keys [][]byte, k []byte) bool {
	for _, x := range keys {
		if bytes.Equal(x, k) {
			return true
		}
	}
	return false
}

// Delete implements storage.Storage.
func (st *tableStorage) Delete(key string) error {
	if err := st.put(key, nil); err != nil {
		return fmt.Errorf("correlator storage: delete: %w", err)
	}
	return nil
}

// GetOffset implements storage.Storage.
func (st *tableStorage) GetOffset(def int64) (int64, error) {
	if st.offsetDirty.Load() {
		return st.offset.Load(), nil
	}
	v, err := st.get(offsetKey)
	if err != nil {
		return 0, fmt.Errorf("correlator storage: offset: %w", err)
	}
	if v == nil {
		return def, nil
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("correlator storage: offset %q: %w", v, err)
	}
	return n, nil
}

// SetOffset implements storage.Storage: the offset is kept and written
// with the next trail write.
func (st *tableStorage) SetOffset(offset int64) error {
	st.offset.Store(offset)
	st.offsetDirty.Store(true)
	return nil
}

// addOffset adds the pending offset to a batch.
func (st *tableStorage) addOffset(b *pebble.Batch) {
	if st.offsetDirty.Swap(false) {
		_ = b.Set(offsetKey, strconv.AppendInt(nil, st.offset.Load(), 10), nil)
	}
}

// writeOffset writes the pending offset on its own.
func (st *tableStorage) writeOffset(db *pebble.DB) error {
	if !st.offsetDirty.Swap(false) {
		return nil
	}
	return db.Set(offsetKey, strconv.AppendInt(nil, st.offset.Load(), 10), pebble.NoSync)
}

// MarkRecovered implements storage.Storage.
func (st *tableStorage) MarkRecovered() error { return nil }

// Iterator implements storage.Storage. During a sweep it yields the trails
// due by then, in due order; otherwise every trail.
func (st *tableStorage) Iterator() (storage.Iterator, error) {
	if err := st.flush(); err != nil {
		return nil, err
	}
	if until := st.owner.sweepUntil.Load(); until != 0 {
		it, err := st.newIter(&pebble.IterOptions{LowerBound: []byte{nsDue}, UpperBound: dueKey(until+1, "")})
		if err != nil {
			return nil, err
		}
		return &dueIterator{st: st, it: it, first: true}, nil
	}
	return st.IteratorWithRange(nil, nil)
}

// IteratorWithRange implements storage.Storage over the trails.
func (st *tableStorage) IteratorWithRange(start, limit []byte) (storage.Iterator, error) {
	if err := st.flush(); err != nil {
		return nil, err
	}
	lower := append([]byte{nsData}, start...)
	upper := []byte{nsData + 1}
	if len(limit) > 0 {
		upper = append([]byte{nsData}, limit...)
	}
	it, err := st.newIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, err
	}
	return &dataIterator{st: st, it: it, first: true}, nil
}

// newIter opens an iterator that Close waits for (release it with
// releaseIter).
func (st *tableStorage) newIter(o *pebble.IterOptions) (*pebble.Iterator, error) {
	var it *pebble.Iterator
	err := st.read(func(db *pebble.DB) error {
		var err error
		if it, err = db.NewIter(o); err == nil {
			st.iters.Add(1)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("correlator storage: iterator: %w", err)
	}
	return it, nil
}

func (st *tableStorage) releaseIter(it *pebble.Iterator) {
	_ = it.Close()
	st.iters.Done()
}

// dataIterator iterates trails, with goka's keys (no namespace byte).
type dataIterator struct {
	st    *tableStorage
	it    *pebble.Iterator
	first bool
	// sought: Seek positioned the iterator; the next Next stays there.
	sought, soughtOK bool
}

func (d *dataIterator) Next() bool {
	switch {
	case d.sought:
		d.sought = false
		return d.soughtOK
	case d.first:
		d.first = false
		return d.it.First()
	}
	return d.it.Next()
}
func (d *dataIterator) Err() error             { return d.it.Error() }
func (d *dataIterator) Key() []byte            { return d.it.Key()[1:] }
func (d *dataIterator) Value() ([]byte, error) { return bytes.Clone(d.it.Value()), nil }
func (d *dataIterator) Release()               { d.st.releaseIter(d.it) }
func (d *dataIterator) Seek(key []byte) bool {
	d.first = false
	d.sought, d.soughtOK = true, d.it.SeekGE(append([]byte{nsData}, key...))
	return d.soughtOK
}

// dueIterator iterates the deadline index, yielding the trails' keys.
type dueIterator struct {
	st    *tableStorage
	it    *pebble.Iterator
	first bool
}

func (d *dueIterator) Next() bool {
	if d.first {
		d.first = false
		return d.it.First()
	}
	return d.it.Next()
}
func (d *dueIterator) Err() error  { return d.it.Error() }
func (d *dueIterator) Key() []byte { return d.it.Key()[9:] }
func (d *dueIterator) Value() ([]byte, error) {
	return d.st.get(append([]byte{nsData}, d.Key()...))
}
func (d *dueIterator) Release()           { d.st.releaseIter(d.it) }
func (d *dueIterator) Seek(_ []byte) bool { return false }

// pendingStat is what the oldest-unconsumed index says of one (topic,
// group).
type pendingStat struct {
	oldestAckNs int64
	count       uint64
}

// pendingStats returns, per (topic, group), the trails' pending entries
// and their earliest acknowledgement time: the counts are kept as the
// index is written, the times read from the first entry of each (topic,
// group), so a report costs the groups, not the pending messages.
func (st *tableStorage) pendingStats(into map[[2]string]pendingStat) error {
	if !st.counted.Load() {
		return fmt.Errorf("correlator storage: %s: pending messages still being counted", st.path)
	}
	oldest := map[[2]string]int64{}
	if err := st.oldestPending(oldest); err != nil {
		return err
	}
	st.wmu.Lock()
	counts := maps.Clone(st.pendings)
	st.wmu.Unlock()
	for id, ack := range oldest {
		s, seen := into[id]
		if !seen || ack < s.oldestAckNs {
			s.oldestAckNs = ack
		}
		s.count += uint64(max(counts[id], 0))
		into[id] = s
	}
	return nil
}

// oldestPending returns, per (topic, group), the earliest acknowledgement
// time among the trails' pending entries.
func (st *tableStorage) oldestPending(into map[[2]string]int64) error {
	if err := st.flush(); err != nil {
		return err
	}
	it, err := st.newIter(&pebble.IterOptions{LowerBound: []byte{nsPending}, UpperBound: []byte{nsPending + 1}})
	if err != nil {
		return err
	}
	defer st.releaseIter(it)
	for ok := it.First(); ok; {
		id, ack, valid := parsePendingKey(it.Key())
		if !valid {
			ok = it.Next()
			continue
		}
		if old, seen := into[id]; !seen || ack < old {
			into[id] = ack
		}
		// Skip the rest of this (topic, group): its first key is the oldest.
		next := append([]byte{nsPending}, id[0]...)
		next = append(next, 0)
		next = append(next, id[1]...)
		next = append(next, 1) // past the 0x00 separator
		ok = it.SeekGE(next)
	}
	return it.Error()
}

// quietLogger sends Pebble's informational logs nowhere; its errors and
// fatal errors still reach the process (Fatalf panics, as Pebble expects).
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// mayBeStored tells whether Pebble may hold key (false: it does not).
func (st *tableStorage) mayBeStored(key string) bool {
	st.fmu.Lock()
	defer st.fmu.Unlock()
	return st.filter == nil || st.filter.mayContain(key)
}

// filterAdd adds the keys of the dirty trails to the key filters, before
// a flush writes them; the caller holds wmu.
func (st *tableStorage) filterAdd() {
	st.fmu.Lock()
	defer st.fmu.Unlock()
	if st.filter == nil && st.building == nil {
		return
	}
	for key, ch := range st.dirty {
		if ch.cur == nil {
			continue
		}
		if st.filter != nil {
			st.filter.add(key)
		}
		if st.building != nil {
			st.building.add(key)
		}
	}
}

// rebuildFilterIfFull starts a new filter when the one in use is past its
// capacity (mostly deleted trails by then).
func (st *tableStorage) rebuildFilterIfFull() error {
	st.fmu.Lock()
	due := st.filter != nil && st.building == nil && st.filter.full()
	st.fmu.Unlock()
	if !due {
		return nil
	}
	return st.buildFilter()
}

// buildFilter makes a key filter for twice the trails stored, from a scan
// of the table in the background (the filter in use, if any, serves until
// it is done); an empty table's is ready at once. The scan reads the
// iterator's snapshot, opened after building is set: a key written before
// is in the snapshot, one written after is added by its flush.
func (st *tableStorage) buildFilter() error {
	trails := int(max(st.trails.Load(), 0))
	capacity := min(max(2*trails, st.owner.filterMin), st.owner.filterMax)
	if trails > capacity/2 {
		st.fmu.Lock()
		st.filter, st.building = nil, nil // it would soon be full: do without
		st.fmu.Unlock()
		return nil
	}
	next := newKeyFilter(capacity)
	if trails == 0 && st.counted.Load() {
		st.fmu.Lock()
		st.filter = next
		st.fmu.Unlock()
		return nil
	}
	st.fmu.Lock()
	st.building = next
	st.fmu.Unlock()
	it, err := st.newIter(&pebble.IterOptions{LowerBound: []byte{nsData}, UpperBound: []byte{nsDue}})
	if err != nil {
		st.fmu.Lock()
		st.building = nil
		st.fmu.Unlock()
		return fmt.Errorf("correlator storage: key filter %s: %w", st.path, err)
	}
	go func() {
		defer st.releaseIter(it)
		ok := it.First()
		for ; ok && !st.closing.Load(); ok = it.Next() {
			st.fmu.Lock()
			next.addBytes(it.Key()[1:])
			st.fmu.Unlock()
		}
		st.fmu.Lock()
		defer st.fmu.Unlock()
		if st.building != next {
			return // closed and opened again meanwhile
		}
		st.building = nil
		if !ok && it.Error() == nil && !st.closing.Load() {
			st.filter = next
		}
	}()
	return nil
}

// The key filter is saved beside the store at Close and loaded at the next
// Open, so that a clean restart or rebalance does not scan the table (a
// table of 10 M trails takes seconds of CPU). It is used only if the store
// holds the very table files it was saved with: the store runs without a
// WAL, so any write that outlived a crash or a close, by this version or
// any other, is in a table file written after the filter was saved, and
// the filter is then built again from a scan instead.
func (st *tableStorage) filterPath() string { return st.path + ".keys" }

// tableFiles returns the numbers of the store's table files, in order.
func tableFiles(db *pebble.DB) ([]uint64, error) {
	levels, err := db.SSTables()
	if err != nil {
		return nil, err
	}
	var nums []uint64
	for _, l := range levels {
		for _, t := range l {
			nums = append(nums, uint64(t.FileNum))
		}
	}
	slices.Sort(nums)
	return nums, nil
}

// saveFilter writes the filter in use, after the store's last flush; the
// filter is only an optimisation, so a failure is logged, not returned.
func (st *tableStorage) saveFilter(db *pebble.DB) {
	path := st.filterPath()
	_ = os.Remove(path)
	st.fmu.Lock()
	f := st.filter
	st.fmu.Unlock()
	if f == nil {
		return
	}
	tables, err := tableFiles(db)
	if err == nil {
		err = writeFileAtomic(path, f.marshal(tables))
	}
	if err != nil {
		st.owner.log.Warn("correlator storage: key filter not saved; the next open scans the table", "path", path, "err", err)
	}
}

// loadFilter returns the saved filter if it is of the store as it is, and
// removes it: a filter is loaded once.
func (st *tableStorage) loadFilter(db *pebble.DB) *keyFilter {
	path := st.filterPath()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	_ = os.Remove(path)
	f, saved, err := unmarshalKeyFilter(b)
	if err != nil {
		return nil
	}
	now, err := tableFiles(db)
	if err != nil || !slices.Equal(now, saved) {
		return nil
	}
	return f
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
