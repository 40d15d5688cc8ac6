package proxy

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// fakeAdvertiser maps node N to proxy:20000+N and remembers what it was
// told.
type fakeAdvertiser struct {
	seen map[int32]string
}

func (f *fakeAdvertiser) Advertise(node int32, host string, port int32) (string, int32, error) {
	if node > 1000 {
		return "", 0, errors.New("too big")
	}
	if f.seen == nil {
		f.seen = map[int32]string{}
	}
	f.seen[node] = fmt.Sprintf("%s:%d", host, port)
	return "proxy", 20000 + node, nil
}

// addresses lists every broker address in a response.
func addresses(resp kmsg.Response) []string {
	var out []string
	add := func(node int32, host string, port int32) {
		out = append(out, fmt.Sprintf("%d=%s:%d", node, host, port))
	}
	switch r := resp.(type) {
	case *kmsg.MetadataResponse:
		for _, b := range r.Brokers {
			add(b.NodeID, b.Host, b.Port)
		}
	case *kmsg.FindCoordinatorResponse:
		if r.Version < 4 {
			add(r.NodeID, r.Host, r.Port)
		}
		for _, c := range r.Coordinators {
			add(c.NodeID, c.Host, c.Port)
		}
	case *kmsg.DescribeClusterResponse:
		for _, b := range r.Brokers {
			add(b.NodeID, b.Host, b.Port)
		}
	case *kmsg.ProduceResponse:
		for _, b := range r.Brokers {
			add(b.NodeID, b.Host, b.Port)
		}
	case *kmsg.FetchResponse:
		for _, b := range r.Brokers {
			add(b.NodeID, b.Host, b.Port)
		}
	case *kmsg.ShareFetchResponse:
		for _, b := range r.NodeEndpoints {
			add(b.NodeID, b.Host, b.Port)
		}
	case *kmsg.ShareAcknowledgeResponse:
		for _, b := range r.NodeEndpoints {
			add(b.NodeID, b.Host, b.Port)
		}
	}
	return out
}

func sampleResponses() []kmsg.Response {
	meta := kmsg.NewPtrMetadataResponse()
	meta.SetVersion(12)
	for i := range int32(3) {
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port = i, fmt.Sprintf("kafka-%d", i), 9092
		meta.Brokers = append(meta.Brokers, b)
	}
	meta.ClusterID = kmsg.StringPtr("cluster-1")
	mt := kmsg.NewMetadataResponseTopic()
	mt.Topic = kmsg.StringPtr("orders")
	meta.Topics = append(meta.Topics, mt)

	fc3 := kmsg.NewPtrFindCoordinatorResponse()
	fc3.SetVersion(3)
	fc3.NodeID, fc3.Host, fc3.Port = 2, "kafka-2", 9092
	fc4 := kmsg.NewPtrFindCoordinatorResponse()
	fc4.SetVersion(4)
	c := kmsg.NewFindCoordinatorResponseCoordinator()
	c.Key, c.NodeID, c.Host, c.Port = "group-a", 1, "kafka-1", 9092
	bad := kmsg.NewFindCoordinatorResponseCoordinator()
	bad.Key, bad.NodeID, bad.Port, bad.ErrorCode = "group-b", -1, -1, 15 // COORDINATOR_NOT_AVAILABLE
	fc4.Coordinators = append(fc4.Coordinators, c, bad)

	dc := kmsg.NewPtrDescribeClusterResponse()
	dc.SetVersion(1)
	db := kmsg.NewDescribeClusterResponseBroker()
	db.NodeID, db.Host, db.Port = 0, "kafka-0", 9093
	dc.Brokers = append(dc.Brokers, db)

	pr := kmsg.NewPtrProduceResponse()
	pr.SetVersion(10)
	pb := kmsg.NewProduceResponseBroker()
	pb.NodeID, pb.Host, pb.Port = 1, "kafka-1", 9092
	pr.Brokers = append(pr.Brokers, pb)

	fr := kmsg.NewPtrFetchResponse()
	fr.SetVersion(16)
	fb := kmsg.NewFetchResponseBroker()
	fb.NodeID, fb.Host, fb.Port = 2, "kafka-2", 9092
	fr.Brokers = append(fr.Brokers, fb)

	sf := kmsg.NewPtrShareFetchResponse()
	sf.SetVersion(1)
	se := kmsg.NewShareFetchResponseNodeEndpoint()
	se.NodeID, se.Host, se.Port = 0, "kafka-0", 9092
	sf.NodeEndpoints = append(sf.NodeEndpoints, se)
	return []kmsg.Response{meta, fc3, fc4, dc, pr, fr, sf}
}

func TestRewriteAddresses(t *testing.T) {
	for _, resp := range sampleResponses() {
		name := fmt.Sprintf("%s v%d", kmsg.NameForKey(resp.Key()), resp.GetVersion())
		// What the client gets is the wire form of the rewritten response.
		dec, err := decodeResponse(resp.Key(), resp.GetVersion(), resp.AppendTo(nil))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		before := addresses(dec)
		a := &fakeAdvertiser{}
		changed, err := RewriteAddresses(dec, a)
		if err != nil || !changed {
			t.Fatalf("%s: changed=%t err=%v", name, changed, err)
		}
		out, err := decodeResponse(resp.Key(), resp.GetVersion(), dec.AppendTo(nil))
		if err != nil {
			t.Fatalf("%s: rewritten response does not decode: %v", name, err)
		}
		for i, addr := range addresses(out) {
			var node int32
			var host string
			var port int32
			fmt.Sscanf(before[i], "%d=", &node)
			if node < 0 {
				if addr != before[i] {
					t.Errorf("%s: entry without a broker changed: %s -> %s", name, before[i], addr)
				}
				continue
			}
			if _, err := fmt.Sscanf(addr, "%d=%s", &node, &host); err != nil {
				t.Fatal(err)
			}
			port = 20000 + node
			if want := fmt.Sprintf("%d=proxy:%d", node, port); addr != want {
				t.Errorf("%s: %s, want %s", name, addr, want)
			}
			if a.seen[node] == "" {
				t.Errorf("%s: the proxy did not learn node %d's address", name, node)
			}
		}
		// Everything but the addresses survives.
		restored := kmsg.ResponseForKey(resp.Key())
		restored.SetVersion(resp.GetVersion())
		restored.ReadFrom(resp.AppendTo(nil))
		RewriteAddresses(restored, a)
		if !reflect.DeepEqual(restored, out) {
			t.Errorf("%s: rewritten response differs beyond its addresses:\n%+v\n%+v", name, restored, out)
		}
	}
}

func TestRewriteAddressesRefusesUnmappable(t *testing.T) {
	meta := kmsg.NewPtrMetadataResponse()
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = 5000, "kafka-big", 9092
	meta.Brokers = append(meta.Brokers, b)
	if _, err := RewriteAddresses(meta, &fakeAdvertiser{}); err == nil {
		t.Fatal("a broker the proxy cannot map was left pointing around it")
	}
}

func TestAdjustAPIVersions(t *testing.T) {
	resp := kmsg.NewPtrApiVersionsResponse()
	add := func(key, min, max int16) {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = key, min, max
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	add(1, 4, 999)  // Fetch: capped to kmsg's max
	add(17, 1, 1)   // SaslHandshake from v1 only: the proxy adds v0
	add(36, 0, 2)   // SaslAuthenticate
	add(3000, 0, 1) // unknown to kmsg: dropped
	add(3, 0, 1)    // Metadata: unchanged
	if !AdjustAPIVersions(resp) {
		t.Fatal("nothing changed")
	}
	got := map[int16][2]int16{}
	for _, k := range resp.ApiKeys {
		got[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
	}
	want := map[int16][2]int16{
		1:  {4, (&kmsg.FetchRequest{}).MaxVersion()},
		17: {0, 1},
		36: {0, 2},
		3:  {0, 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestDecodeUnsupportedAPIVersions(t *testing.T) {
	// A broker answers an ApiVersions request of a version it does not know
	// in v0 with UNSUPPORTED_VERSION.
	v0 := kmsg.NewPtrApiVersionsResponse()
	v0.SetVersion(0)
	v0.ErrorCode = 35
	k := kmsg.NewApiVersionsResponseApiKey()
	k.ApiKey, k.MaxVersion = 18, 3
	v0.ApiKeys = append(v0.ApiKeys, k)
	resp, err := decodeResponse(18, 4, v0.AppendTo(nil))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetVersion() != 0 || len(resp.(*kmsg.ApiVersionsResponse).ApiKeys) != 1 {
		t.Errorf("decoded %+v", resp)
	}
	// The proxy answers versions it does not know itself, the same way.
	local := unsupportedAPIVersions(9)
	resp, err = decodeResponse(18, 99, local[4:])
	if err != nil || resp.(*kmsg.ApiVersionsResponse).ErrorCode != 35 {
		t.Errorf("local answer %x: %+v, %v", local, resp, err)
	}
}

// FuzzRewriteResponse feeds arbitrary bodies of the responses the proxy
// rewrites to the decoder and the rewrite: never a panic, and whatever
// decodes and is rewritten encodes to a response that decodes again with
// every broker pointing at the proxy. Flexible versions are skipped: on
// garbage, kmsg's tagged-field loops run up to 2^32 times (seconds of CPU
// for a 30-byte body), which the fuzzer reports as a hang.
func FuzzRewriteResponse(f *testing.F) {
	for _, resp := range sampleResponses() {
		f.Add(byte(resp.Key()), byte(resp.GetVersion()), resp.AppendTo(nil))
	}
	keys := []int16{0, 1, 3, 10, 18, 60, 78, 79}
	f.Fuzz(func(t *testing.T, k, v byte, body []byte) {
		key := keys[int(k)%len(keys)]
		version := int16(v) % (kmsg.ResponseForKey(key).MaxVersion() + 1)
		probe := kmsg.ResponseForKey(key)
		probe.SetVersion(version)
		if probe.IsFlexible() {
			return
		}
		resp, err := decodeResponse(key, version, body)
		if err != nil {
			return
		}
		if r, ok := resp.(*kmsg.ApiVersionsResponse); ok {
			AdjustAPIVersions(r)
		}
		before := addresses(resp)
		changed, err := RewriteAddresses(resp, &fakeAdvertiser{})
		if err != nil || !changed {
			return
		}
		again, err := decodeResponse(key, resp.GetVersion(), resp.AppendTo(nil))
		if err != nil {
			t.Fatalf("rewritten %s v%d does not decode: %v", kmsg.NameForKey(key), version, err)
		}
		after := addresses(again)
		if len(after) != len(before) {
			t.Fatalf("%s v%d: %d addresses before, %d after", kmsg.NameForKey(key), version, len(before), len(after))
		}
		for i, a := range after {
			var node int32
			fmt.Sscanf(before[i], "%d=", &node)
			unmapped := node < 0 || strings.HasPrefix(before[i], fmt.Sprintf("%d=:", node))
			if dc, ok := again.(*kmsg.DescribeClusterResponse); ok && dc.EndpointType == 2 {
				unmapped = true
			}
			if unmapped && a != before[i] {
				t.Fatalf("%s v%d: %s changed to %s", kmsg.NameForKey(key), version, before[i], a)
			}
			if !unmapped && a != fmt.Sprintf("%d=proxy:%d", node, 20000+node) {
				t.Fatalf("%s v%d: %s became %s", kmsg.NameForKey(key), version, before[i], a)
			}
		}
	})
}
