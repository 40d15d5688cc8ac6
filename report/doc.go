// Package report reads kaudit's results back from ClickHouse and formats
// them; it never writes (the per-minute rollups it reads are kept current
// by store.Refresher, which documents why they are not a materialized
// view):
//
//   - Trail: the raw audit events and latest verdicts of one message;
//   - Overview, Series: read deliveries_1m (what `kaudit report`, the
//     web dashboard and the Grafana dashboard show);
//   - Anomalies: the latest verdicts other than DELIVERED.
//
// All reads of deliveries use FINAL, so they see each message's latest
// verdict. Values reach the SQL only as bound parameters.
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
