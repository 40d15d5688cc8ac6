// Package correlator is kaudit's correlator: a goka processor that joins the
// raw audit events of each message by correlation ID in a group table (one
// Trail per message, one Hop per topic) and gives a verdict per (message,
// topic, consumer group) on the verdicts topic, with the message's ack
// latency and end-to-end latency.
//
//	c, err := correlator.New(correlator.Config{Brokers: []string{"localhost:9092"}})
//	if err != nil { ... }
//	err = c.Run(ctx) // until ctx is cancelled
//
// Events that cannot be used go to the dead-letter topic with the reason in
// the Kafka Connect error headers (a truncated stub when the record is too
// large to copy); the correlator keeps going.
//
// # Deadlines without scanning the table
//
// goka has no timers, and visiting every trail (Processor.VisitAll) costs
// what the table holds. The table is stored in Pebble with a deadline index
// kept in the same atomic batch as every trail (storage.go): each trail
// carries NextDueNs (its deadline, a confirmation, a re-check or its
// deletion), and a sweep (every SweepInterval) visits only the trails due
// by then, read from the index in due order. A trail whose expected groups
// all consumed it is deleted a duplicate window after its last event; one
// with a loss is kept until grace after its deadline, so a late consume
// still turns LOST into LATE.
//
// # Crash safety: every verdict leaves the process, with its seq, exactly
// as if nothing had happened
//
// A verdict is a pure function of a trail's facts and of time, and so is its
// sequence number: seq = max(previous seq + 1, the time the judgement is due
// to), where that time is the event's time for a verdict an event decides
// and the deadline for one a sweep decides. Replaying the same events
// therefore gives the same verdicts with the same seq, and ClickHouse's
// ReplacingMergeTree(seq) keeps one row for a verdict written twice. What
// remains is to make sure every verdict is written at least once, whatever
// instant a process is killed at:
//
//   - Verdicts decided by an event. The correlator writes them with a
//     franz-go client of its own (idempotent, acks=all) and defers the input
//     message's commit until they, and the verdicts of every earlier
//     message of the partition, are acknowledged (output.go explains why
//     goka's own emit cannot guarantee this). goka commits a message only
//     after its table update is acknowledged too. So any message whose
//     verdicts might not have been written is read again after a crash.
//     Read again, it may find its trail already holding it (goka writes the
//     local store before the table topic, and the table topic before the
//     commit): Apply then reports a repeat, and the correlator writes the
//     trail's current verdicts again with their seq, and writes the trail
//     to the table topic again so the table cannot stay behind the local
//     store.
//
//   - Verdicts decided by a sweep (LOST, UNAUDITED_PRODUCER, a cause turned
//     into audit_gap). A sweep stores the decision in the trail, marked
//     unconfirmed, before it writes the verdict; the trail is then due again
//     after ConfirmAfter, and that sweep clears the mark if the verdict was
//     acknowledged or writes it again (same seq) if not. A crash forgets the
//     acknowledgements, so after one the verdict is simply written again.
//     If the stored decision itself was lost (the partition moved to
//     another instance before the table update was acknowledged), that
//     instance decides it again, with the same seq since it derives from
//     the deadline.
//
//   - The local store. Pebble runs without a write-ahead log, and trail
//     writes wait in memory for the next batch (storage.go): after kill -9
//     it comes back as of its last memtable flush, trails, indexes and the
//     table topic's offset all of one instant, and goka reads the table
//     topic from that offset on before it processes any input. What the
//     store loses is in the table topic; what the table topic lacks was
//     never committed as consumed, so it is read again. The key filter
//     that spares the lookup of a new message's trail (keyfilter.go) lives
//     in memory only and is rebuilt from the store at every open: until
//     it is, every lookup goes to Pebble.
//
// So after kill -9 at any instant — while folding events, during a sweep,
// during a rebalance — a restart on the same state directory, on an empty
// one, or on another instance of the group gives every (message, topic,
// group) its verdict, and the rows written twice collapse in FINAL.
//
// # Clocks
//
// Event times come from the clients. For the deadlines and the deletion of
// trails (never for the latencies shown) they are clamped to
// [now - MaxEventAge, now + ClockSkew] of the correlator's clock, so a
// client clock far in the future cannot keep a trail forever and one far in
// the past or overflowing cannot decide an instant verdict; an event
// without a usable time (zero or negative) is dead-lettered.
//
// # Audit gaps
//
// Interceptors that drop audit events (a full queue, an audit cluster
// that is down) report how many, per client, topic, group and minute. The
// learner keeps these reports per topic; a LOST verdict whose group's
// clients reported dropped consume events for the topic between the
// message's acknowledgement and its deadline gets the cause audit_gap
// instead of not_consumed (re-checked RecheckAfter after the loss, as
// reports arrive late), and so does an UNAUDITED_PRODUCER whose producers
// reported dropped produce events.
//
// # Scaling out
//
// Several correlators with the same Group share the audit topic's
// partitions (goka's consumer group); when one stops or dies, its
// partitions move to the others, which recover the trails from the table
// topic. Run at most as many as the events topic has partitions.
package correlator
