package demo_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/alerts"
	"github.com/kaudit/kaudit/internal/app/demo"
	"github.com/kaudit/kaudit/internal/testing/chtest"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/web"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestDemoRaisesAlert runs the demo for 12 seconds: its archiver group
// dies after 4, so its later messages are LOST and its 99.9% completeness
// SLO pages. The demo prints the alert with sample messages, and the
// dashboard's alerts page lists it; every sample is a message ClickHouse
// has as LOST for archiver.
func TestDemoRaisesAlert(t *testing.T) {
	ch := chtest.NewDatabase(t)
	var out bytes.Buffer
	webAddr := freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	err := demo.Run(ctx, demo.Config{
		StateDir:      filepath.Join(t.TempDir(), "state"),
		BrokerAddr:    freeAddr(t),
		ClickHouse:    ch,
		UseClickHouse: true,
		WebAddr:       webAddr,
		Duration:      12 * time.Second,
		Rate:          200,
		Out:           &out,
	})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{"SLOs:       each group 99.9% on time", "ALERT FIRING page demo.orders/archiver: demo.orders / archiver breaks completeness 99.9% over 30d",
		"\nAlerts (kaudit alerts; the dashboard lists them on /alerts):\n", "\n  firing   page   demo.orders/archiver completeness 99.9% over 30d"} {
		if !strings.Contains(text, want) {
			t.Errorf("the demo did not print %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "demo.orders/billing") || strings.Contains(text, "demo.orders/analytics") {
		t.Errorf("an alert of a healthy group:\n%s", text)
	}

	conn := chtest.Open(t, ch)
	hist, err := alerts.History(ctx, conn, ch.Database, alerts.HistoryFilter{Group: "archiver"})
	if err != nil {
		t.Fatal(err)
	}
	var page *alerts.Alert
	for _, a := range hist {
		if a.Severity == alerts.SeverityPage && a.SLO == alerts.Completeness {
			page = a
		}
	}
	if page == nil || len(page.Samples) == 0 {
		t.Fatalf("no archiver page with samples stored: %+v", hist)
	}
	for _, s := range page.Samples {
		var status string
		err := conn.QueryRow(ctx, "SELECT status FROM "+store.Table(ch.Database, store.DeliveriesTable)+
			" FINAL WHERE topic = 'demo.orders' AND consumer_group = 'archiver' AND correlation_id = ?", s.CorrelationID).Scan(&status)
		if err != nil || status != "LOST" {
			t.Errorf("sample %s: archiver verdict %q (%v), want LOST", s.CorrelationID, status, err)
		}
		if !strings.Contains(text, s.CorrelationID) {
			t.Errorf("the demo did not print sample %s", s.CorrelationID)
		}
	}

	// The dashboard lists it.
	srv, err := web.New(conn, web.Config{Database: ch.Database})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/alerts", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != http.StatusOK || !strings.Contains(string(body), `data-id="`+page.ID+`"`) ||
		!strings.Contains(string(body), `/trail?id=`+page.Samples[0].CorrelationID) {
		t.Errorf("/alerts (%d) does not list the archiver page %s with its samples:\n%s", rec.Code, page.ID, body)
	}
}
