// Package report reads kaudit's results back from ClickHouse and keeps its
// per-minute rollups current:
//
//   - Summary, CountByStatus: read deliveries FINAL directly;
//   - Trail: the raw audit events and latest verdicts of one message;
//   - Refresher: maintains deliveries_1m, one row per minute (of
//     first_seen), topic and consumer group, with counts by status and
//     quantile states (p50/p90/p99/p99.9) of ack and end-to-end latency;
//   - Overview, Series: read deliveries_1m (what `kaudit report`, the
//     web dashboard and the Grafana dashboard show);
//   - Anomalies: the latest verdicts other than DELIVERED;
//   - DropBefore: retention, by dropping whole day partitions.
//
// All reads of deliveries use FINAL, so they see each message's latest
// verdict. Values reach the SQL only as bound parameters.
//
// # Rollups and corrected verdicts
//
// The correlator may correct a verdict: a LOST row (seq 1) is followed by
// a LATE row (seq 2) for the same (topic, consumer_group, correlation_id),
// and deliveries (ReplacingMergeTree(seq)) keeps the latest. A materialized
// view would see both inserts and count the message twice (as would a
// batch the sink writes again after a failure: plain MergeTree tables do
// not deduplicate inserts on 18.16). So deliveries_1m is not fed by a view:
// the Refresher recomputes whole minutes from deliveries FINAL with INSERT
// ... SELECT, under a higher version, into a ReplacingMergeTree(version)
// that keeps the newest computation of every minute. A pass recomputes only
// the minutes that received rows since the previous pass, found from the
// parts of deliveries created since then and the rows' inserted_at. The
// set of (minute, topic, group) keys only grows (a correction keeps its
// message's first_seen, topic and group), so a recomputation never has to
// delete a row. After a pass, for every minute, topic and group,
// deliveries_1m FINAL holds exactly the counts of deliveries FINAL.
//
//	r := report.NewRefresher(conn, report.RefresherConfig{Database: "kaudit"})
//	go r.Run(ctx, 10*time.Second)
//
//	rows, err := report.Overview(ctx, conn, "kaudit", report.Filter{Since: time.Now().Add(-time.Hour)})
//	if err != nil {
//		return err
//	}
//	report.FormatOverview(os.Stdout, rows)
//
//	trail, err := report.Trail(ctx, conn, "kaudit", correlationID)
//	if errors.Is(err, report.ErrNotFound) { ... }
//	report.FormatTrail(os.Stdout, trail)
package report
