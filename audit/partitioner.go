package audit

import "github.com/twmb/franz-go/pkg/kgo"

// Partitioner returns the partitioner every client that writes audit events
// must use: the Sarama hash partitioner with FNV-1a, as goka uses it.
//
// Why: the correlator is a goka processor whose input stream is the audit
// topic and whose group table is keyed by the same correlation ID. Goka
// writes each table update with its own producer, which partitions with
// sarama.NewCustomHashPartitioner(fnv.New32a), and a processor instance
// only holds (and recovers) the table partitions matching the input
// partitions it owns. An input event must therefore land in the partition
// goka would pick for its key; with franz-go's default partitioner
// (murmur2, Kafka's) the events of one message would land in a different
// partition than the correlator's state for it, and the state would be
// recovered into the wrong partition after a rebalance. StickyKeyPartitioner
// with SaramaCompatHasher reproduces Sarama's arithmetic exactly
// (int32(hash) % n, negated when negative).
//
// New applies it to the client it builds. A caller who passes an existing
// client in Config.Client must have built that client with
// kgo.RecordPartitioner(audit.Partitioner()).
func Partitioner() kgo.Partitioner {
	return kgo.StickyKeyPartitioner(kgo.SaramaCompatHasher(fnv32a))
}

// fnv32a is the 32-bit FNV-1a hash of b (hash/fnv's New32a, without the
// allocation of a hash.Hash32 per record).
func fnv32a(b []byte) uint32 {
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	for _, c := range b {
		h ^= uint32(c)
		h *= prime32
	}
	return h
}
