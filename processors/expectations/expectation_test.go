package expectations_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kaudit/kaudit/processors/expectations"
)

func TestValidateSLORanges(t *testing.T) {
	ok := func(e expectations.Expectation) *expectations.Expectation {
		e.Topic, e.Groups = "orders", []string{"billing"}
		return &e
	}
	for _, e := range []*expectations.Expectation{
		ok(expectations.Expectation{}),
		ok(expectations.Expectation{Completeness: 100}),
		ok(expectations.Expectation{Completeness: 99.99, P99: expectations.Duration(5 * time.Second)}),
		ok(expectations.Expectation{Completeness: 0.001}),
		ok(expectations.Expectation{P99: 1, SLOWindow: expectations.Duration(7 * 24 * time.Hour)}),
	} {
		if err := e.Validate(); err != nil {
			t.Errorf("%+v: %v", e, err)
		}
	}
	for _, e := range []*expectations.Expectation{
		ok(expectations.Expectation{Completeness: -1}),
		ok(expectations.Expectation{Completeness: 100.01}),
		ok(expectations.Expectation{Completeness: 1e9}),
		ok(expectations.Expectation{P99: expectations.Duration(-time.Second)}),
		ok(expectations.Expectation{SLOWindow: expectations.Duration(-time.Hour)}),
		{Topic: "orders"},
		{Groups: []string{"billing"}},
		{Topic: "orders", Groups: []string{"billing", ""}},
	} {
		if err := e.Validate(); err == nil {
			t.Errorf("%+v: accepted", e)
		}
	}
}

func TestSLOsInJSON(t *testing.T) {
	e := &expectations.Expectation{Topic: "orders", Groups: []string{"billing"}, Deadline: expectations.Duration(2 * time.Minute),
		Completeness: 99.99, P99: expectations.Duration(5 * time.Second), SLOWindow: expectations.Duration(7 * 24 * time.Hour)}
	b, err := expectations.Codec{}.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"completeness":99.99`, `"p99":"5s"`, `"slo_window":"168h0m0s"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("encoded %s lacks %s", b, want)
		}
	}
	v, err := expectations.Codec{}.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	got := v.(*expectations.Expectation)
	if got.Completeness != 99.99 || time.Duration(got.P99) != 5*time.Second || got.Window() != 7*24*time.Hour {
		t.Errorf("decoded %+v", got)
	}
	// An expectation written before SLOs existed has none.
	v, _ = expectations.Codec{}.Decode([]byte(`{"topic":"orders","groups":["billing"],"deadline":"2m"}`))
	if old := v.(*expectations.Expectation); old.HasSLO() || old.Window() != expectations.DefaultSLOWindow {
		t.Errorf("old record decoded with SLOs: %+v", old)
	}
	// An unknown key from a newer writer is ignored.
	v, _ = expectations.Codec{}.Decode([]byte(`{"topic":"orders","groups":["billing"],"p99":"1s","future":1}`))
	if e := v.(*expectations.Expectation); e == nil || time.Duration(e.P99) != time.Second {
		t.Errorf("record with an unknown key decoded as %+v", e)
	}
	var d expectations.Duration
	if err := json.Unmarshal([]byte(`"30d"`), &d); err != nil || time.Duration(d) != 30*24*time.Hour {
		t.Errorf(`"30d" = %v, %v`, time.Duration(d), err)
	}
	if err := json.Unmarshal([]byte(`"1d12h"`), &d); err != nil || time.Duration(d) != 36*time.Hour {
		t.Errorf(`"1d12h" = %v, %v`, time.Duration(d), err)
	}
	for _, bad := range []string{`"xd"`, `"-1d"`, `"1d-1h"`, `"-5s"`} {
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("%s accepted as %v", bad, time.Duration(d))
		}
	}
}

func TestSLOsInFile(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "e.yaml")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	f, err := expectations.LoadFile(write(`topics:
  orders:
    groups: [billing, search]
    deadline: 2m
    completeness: 99.99
    p99: 5s
    slo_window: 30d
`))
	if err != nil {
		t.Fatal(err)
	}
	e := f.Topics["orders"]
	if e.Completeness != 99.99 || time.Duration(e.P99) != 5*time.Second || e.Window() != 30*24*time.Hour || e.Topic != "orders" {
		t.Errorf("loaded %+v", e)
	}
	for _, bad := range []string{
		"topics:\n  orders:\n    groups: [billing]\n    completeness: 0\n    p99: -1s\n",
		"topics:\n  orders:\n    groups: [billing]\n    completeness: 101\n",
		"topics:\n  orders:\n    groups: [billing]\n    completeness: -5\n",
		"topics:\n  orders:\n    groups: [billing]\n    completness: 99\n", // misspelt key
	} {
		if _, err := expectations.LoadFile(write(bad)); err == nil {
			t.Errorf("accepted:\n%s", bad)
		}
	}
}

// TestDocsExpectationsFile loads the expectations file of docs/alerts.md.
func TestDocsExpectationsFile(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "alerts.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\ntopics:")
	if !ok {
		t.Fatal("docs/alerts.md has no expectations file")
	}
	body, _, _ := strings.Cut(rest, "```")
	p := filepath.Join(t.TempDir(), "expectations.yaml")
	if err := os.WriteFile(p, []byte("topics:"+body), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := expectations.LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	e := f.Topics["orders"]
	if e == nil || e.Completeness != 99.99 || time.Duration(e.P99) != 5*time.Second || e.Window() != 30*24*time.Hour ||
		time.Duration(e.Deadline) != 2*time.Minute || strings.Join(e.Groups, ",") != "billing,search" {
		t.Errorf("docs/alerts.md's file loads as %+v", e)
	}
}
