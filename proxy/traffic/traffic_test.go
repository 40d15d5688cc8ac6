package traffic_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kaudit/kaudit/proxy"
	"github.com/kaudit/kaudit/proxy/traffic"
)

type collect struct {
	mu   sync.Mutex
	recs []traffic.Record
}

func (c *collect) WriteTraffic(rs []traffic.Record) {
	c.mu.Lock()
	c.recs = append(c.recs, rs...)
	c.mu.Unlock()
}

func TestAggregator(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 30, 0, time.UTC)
	clock := func() time.Time { return now }
	out := &collect{}
	a := traffic.New(traffic.Config{Writers: []traffic.Writer{out}, Now: clock, Proxy: "p1", Instance: "i1"})
	req := func(at time.Time, produce ...proxy.PartitionData) *proxy.RequestInfo {
		return &proxy.RequestInfo{Time: at, APIKey: 0, Principal: "User:a", ClientID: "app", ClientAddr: "10.0.0.1:5555", Size: 100, Produce: produce}
	}
	// Two requests in the 03:04 window, one in 03:05.
	a.Record(req(now, proxy.PartitionData{Topic: "t", Partition: 0, Records: 3, Bytes: 30},
		proxy.PartitionData{Topic: "t", Partition: 1, Records: 2, Bytes: 20, ErrorCode: 29}),
		&proxy.ResponseInfo{Size: 10, ErrorCounts: map[int16]int{0: 1, 29: 1}})
	a.Record(req(now.Add(10*time.Second), proxy.PartitionData{Topic: "t", Partition: 0, Records: 4, Bytes: 40}),
		&proxy.ResponseInfo{Size: 10, ErrorCounts: map[int16]int{0: 1}})
	a.Record(req(now.Add(40*time.Second), proxy.PartitionData{Topic: "t", Partition: 0, Records: 1, Bytes: 10}),
		&proxy.ResponseInfo{Size: 10})
	// Fetch with a group.
	a.Record(&proxy.RequestInfo{Time: now, APIKey: 1, Principal: "User:b", ClientID: "c", ClientAddr: "10.0.0.2:1", Group: "g", Size: 50},
		&proxy.ResponseInfo{Size: 500, Fetch: []proxy.PartitionData{{Topic: "t", Partition: 0, Records: 9, Bytes: 90}}})
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	type k struct {
		window, principal, topic, api string
	}
	got := map[k]traffic.Record{}
	for _, r := range out.recs {
		if r.Proxy != "p1" || r.Instance != "i1" || r.WindowEnd.Sub(r.WindowStart) != time.Minute {
			t.Errorf("record %+v", r)
		}
		got[k{r.WindowStart.Format("15:04"), r.Principal, r.Topic, r.API}] = r
	}
	check := func(key k, requests, errors, records, bytes, reqBytes int64) {
		t.Helper()
		r, ok := got[key]
		if !ok {
			t.Fatalf("no record %v in %+v", key, got)
		}
		if r.Requests != requests || r.Errors != errors || r.Records != records || r.Bytes != bytes || r.RequestBytes != reqBytes {
			t.Errorf("%v: %+v", key, r)
		}
	}
	check(k{"03:04", "User:a", "t", "Produce"}, 2, 1, 7, 70, 0) // the failed partition's records do not count
	check(k{"03:04", "User:a", "", "Produce"}, 2, 1, 0, 0, 200)
	check(k{"03:05", "User:a", "t", "Produce"}, 1, 0, 1, 10, 0)
	check(k{"03:04", "User:b", "t", "Fetch"}, 1, 0, 9, 90, 0)
	if r := got[k{"03:04", "User:b", "t", "Fetch"}]; r.Group != "g" || r.ClientAddress != "10.0.0.2" {
		t.Errorf("fetch record %+v", r)
	}
	if len(got) != 6 {
		t.Errorf("%d records, want 6: %+v", len(got), got)
	}
}
