// Package saramaaudit audits IBM/sarama clients and goka processors, which
// are built on sarama: it gives every produced message a correlation_id
// header and reports each produced message (at acknowledgement) and each
// consumed message to an Emitter as one kaudit event, the same events
// kgoaudit writes for franz-go clients (Source "sarama"), so the correlator
// joins trails across both.
//
// Sarama has a producer interceptor (OnSend) but no acknowledgement hook, so
// producers are audited by building them here: the audited producer is
// sarama's, with an OnSend interceptor that adds the header and notes the
// send time, and a reader of its Successes and Errors channels that emits
// the event and forwards the message unchanged.
//
//	em, err := emitter.New(emitter.Config{Brokers: []string{"audit-kafka:9092"}})
//	if err != nil { ... }
//	defer em.Close(ctx)
//
//	cfg := sarama.NewConfig()
//	cfg.ClientID = "checkout"
//	cfg.Version = sarama.V2_1_0_0 // headers need at least 0.11
//	producer, err := saramaaudit.NewAsyncProducer(em, brokers, cfg) // or NewSyncProducer
//	producer.Input() <- &sarama.ProducerMessage{Topic: "orders", Value: sarama.StringEncoder("...")}
//
//	group, err := saramaaudit.NewConsumerGroup(em, brokers, "billing", cfg)
//	err = group.Consume(ctx, []string{"orders"}, handler)
//
// A goka processor, inputs and outputs audited (tables are state and are
// not):
//
//	cfg := goka.DefaultConfig()
//	proc, err := goka.NewProcessor(brokers, graph,
//		goka.WithProducerBuilder(saramaaudit.ProducerBuilder(em, cfg)),
//		goka.WithConsumerGroupBuilder(saramaaudit.ConsumerGroupBuilder(em, cfg)),
//	)
//
// What is reported:
//
//   - Produce (AsyncProducer, goka): when sarama's dispatcher takes the
//     message from Input(), before partitioning, the message gets a
//     correlation_id header holding a time-ordered UUID v7 unless it has a
//     non-empty one, which is kept, and the send time is noted (retries do
//     not change either). When sarama returns the message, one KindProduce
//     event: send and ack times, partition, offset, record timestamp,
//     client ID, host, digest (codecs.Digest of the encoded key and value)
//     and size; for a failed message the error text instead of ack time and
//     offset (-1). Then the message goes to the application's Successes or
//     Errors channel (or resolves goka's promise), unchanged. The audited
//     producer always asks sarama for both kinds of results and forwards
//     only those the application's configuration asked for.
//   - Produce (SyncProducer): the same event, timed around SendMessage.
//   - Consume: one KindConsume event per message carrying a correlation ID
//     when sarama hands it to the partition's Messages channel (see
//     ConsumerInterceptor for what "consumed" means here), with the group
//     the interceptor was built for.
//   - Records on the Emitter's own topic (if it has a Topic() string method,
//     as *emitter.Emitter does) are never audited; WithTopicFilter narrows
//     auditing further.
//
// Nothing here blocks the application on auditing (Emit never blocks; a full
// queue drops the event, counted as Rejected in Stats, and the Emitter
// reports the drop in a codecs.KindDrops event under the client ID, topic
// and group of the dropped event) or lets a panic escape (recovered and
// counted). The interceptors keep nothing of their own: what is lost when
// the audited process is killed (kill -9) is what the Emitter had queued;
// see the emitter package. Keys and values that are not
// sarama.ByteEncoder or StringEncoder are encoded a second time for the
// digest.
package saramaaudit
