package correlator

import (
	"bufio"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kaudit/kaudit/codecs"
)

func sampleTrail() *Trail {
	return &Trail{
		CorrelationID: "c0613861-f1a9-47f0-9b92-09a2346fe250",
		NextDueNs:     1_700_000_070_000_000_000,
		Hops: []Hop{{
			Topic:       "orders",
			FirstSeenNs: 1_700_000_000_000_000_000, LastSeenNs: 1_700_000_001_000_000_000,
			Produce: &ProduceFacts{Partition: 2, Offset: 1 << 40, ClientID: "p", Host: "h", SendNs: 1, AckNs: 1_700_000_000_000_000_000,
				RecordTsNs: 3, Error: "", Digest: ^uint64(0), PayloadSize: 1 << 20},
			ProduceEvents: 2, DupWrite: true,
			Expected:   []ExpectedGroup{{Group: "a"}, {Group: "b", Learned: true}},
			DeadlineNs: 1_700_000_060_000_000_000, RawDeadlineNs: 1_700_000_060_000_000_001,
			Groups: []GroupFacts{
				{Group: ""},
				{Group: "a", ClientID: "a-1", Host: "h2", Partition: -1, Offset: 41, FirstConsumeNs: 5, LastConsumeNs: 6,
					Count: 3, Digest: 7, OtherOffset: true, Status: codecs.StatusDuplicate, Cause: CauseRedelivery, Emitted: 2,
					Seq: 1 << 62, DecidedNs: 9, Unconfirmed: true},
			},
			ConfirmDueNs: 11, RecheckNs: 12,
		}, {
			Topic: "payments", FirstSeenNs: 4,
			Groups: []GroupFacts{{Group: "h", Count: 1, FirstConsumeNs: 4, LastConsumeNs: 4}},
		}},
	}
}

func TestTrailWireRoundTrip(t *testing.T) {
	big := &Trail{CorrelationID: "x", Hops: []Hop{{Topic: "t", Groups: []GroupFacts{{Group: "big", Cause: strings.Repeat("c", 300)}}}}}
	for _, in := range []*Trail{sampleTrail(), {}, big} {
		var out Trail
		if err := UnmarshalTrail(AppendTrail(nil, in), &out); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(in, &out) && !(len(in.Hops) == 0 && len(out.Hops) == 0 && in.CorrelationID == out.CorrelationID) {
			t.Errorf("round trip:\n in  %+v\n out %+v", in, &out)
		}
	}
}

// The header carries what the storage indexes: the next due time and the
// expected groups that have not consumed an acknowledged hop.
func TestTrailHeader(t *testing.T) {
	tr := sampleTrail()
	h, err := parseHeader(AppendTrail(nil, tr))
	if err != nil {
		t.Fatal(err)
	}
	want := []pending{{topic: "orders", group: "b", ackNs: 1_700_000_000_000_000_000}}
	if h.nextDueNs != tr.NextDueNs || !reflect.DeepEqual(h.pendings, want) {
		t.Errorf("header %+v, want due %d pendings %+v", h, tr.NextDueNs, want)
	}
}

// A trail written by the previous version (one topic, protobuf without a
// header; the fixture was written by that version's AppendTrail) and one
// written as JSON by the version before decode into a trail of one hop.
func TestTrailDecodesEarlierFormats(t *testing.T) {
	v1, err := os.ReadFile("testdata/trail_v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	var tr Trail
	if err := UnmarshalTrail(v1, &tr); err != nil {
		t.Fatal(err)
	}
	if tr.CorrelationID != "5f0c3a52-8c1e-4d5b-9a57-0e1c2b3d4f5a" || len(tr.Hops) != 1 {
		t.Fatalf("v1: %+v", tr)
	}
	h := tr.Hops[0]
	if h.Topic != "orders" || h.FirstSeenNs != 1_700_000_000_000_000_000 || h.DeadlineNs != 1_700_000_010_004_000_000 ||
		h.Produce == nil || h.Produce.ClientID != "checkout" || h.Produce.AckNs != 1_700_000_000_004_000_000 ||
		len(h.Expected) != 2 || !h.Expected[1].Learned || len(h.Groups) != 2 ||
		h.Groups[0].Status != codecs.StatusDuplicate || h.Groups[0].Count != 2 || h.Groups[0].Seq != 1_700_000_002_500_000_000 ||
		h.Groups[1].Status != codecs.StatusLost || h.Groups[1].Cause != CauseNotConsumed {
		t.Errorf("v1 hop: %+v", h)
	}
	if tr.NextDueNs != h.DeadlineNs {
		t.Errorf("v1: next due %d, want the deadline %d (swept then, and stored in the new format)", tr.NextDueNs, h.DeadlineNs)
	}

	v0, err := os.ReadFile("testdata/trail_v0.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := UnmarshalTrail(v0, &tr); err != nil {
		t.Fatal(err)
	}
	if tr.CorrelationID != "j-1" || len(tr.Hops) != 1 || tr.Hops[0].Groups[0].Status != codecs.StatusDelivered ||
		tr.Hops[0].Produce.Offset != 7 || tr.Hops[0].DeadlineNs != 1700000300001000000 {
		t.Errorf("v0: %+v", tr)
	}
}

// trailProto reads the messages and fields of trail.proto.
func trailProto(t *testing.T) map[string]map[string]protoField {
	t.Helper()
	f, err := os.Open("trail.proto")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msgRe := regexp.MustCompile(`^message (\w+) \{`)
	fieldRe := regexp.MustCompile(`^\s+(repeated )?(\w+) (\w+) = (\d+);`)
	out := map[string]map[string]protoField{}
	var cur string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := msgRe.FindStringSubmatch(line); m != nil {
			cur = m[1]
			out[cur] = map[string]protoField{}
		} else if line == "}" {
			cur = ""
		} else if m := fieldRe.FindStringSubmatch(line); m != nil && cur != "" {
			n, _ := strconv.Atoi(m[4])
			out[cur][m[3]] = protoField{typ: m[2], num: protowire.Number(n)}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

type protoField struct {
	typ string
	num protowire.Number
}

// snake turns a Go field name into its proto name (FirstSeenNs →
// first_seen_ns, ClientID → client_id).
func snake(s string) string {
	s = strings.ReplaceAll(s, "ID", "Id")
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// TestTrailWireMatchesProto encodes each message with exactly one scalar
// field set, for each field, and checks that the bytes are that field as
// trail.proto declares it: number, wire type and value encoding. Nested
// messages are checked by their field number.
func TestTrailWireMatchesProto(t *testing.T) {
	schema := trailProto(t)
	check(t, schema["Produce"], reflect.TypeFor[ProduceFacts](), nil, func(p any) []byte { return appendProduce(nil, p.(*ProduceFacts)) })
	check(t, schema["Expected"], reflect.TypeFor[ExpectedGroup](), nil, func(p any) []byte {
		e := p.(*ExpectedGroup)
		return AppendTrail(nil, &Trail{Hops: []Hop{{Expected: []ExpectedGroup{*e}}}})
	})
	check(t, schema["Group"], reflect.TypeFor[GroupFacts](), nil, func(p any) []byte {
		g := p.(*GroupFacts)
		b := appendGroup(nil, g)
		if g.Group == "" {
			b = b[2:] // the group field, written even when empty (tested below)
		}
		return b
	})
	if b := appendGroup(nil, &GroupFacts{}); len(b) != 2 || b[0] != 0x0a || b[1] != 0 {
		t.Errorf("an empty group is not written as field 1: %x", b)
	}
	check(t, schema["Hop"], reflect.TypeFor[Hop](), map[string]bool{"produce": true, "expected": true, "groups": true},
		func(p any) []byte { return appendHop(nil, p.(*Hop)) })
	// Trail: the ID and the nested hops.
	if f := schema["Trail"]; f["correlation_id"].num != trID || f["hops"].num != trHops || len(f) != 2 {
		t.Errorf("Trail fields %+v", f)
	}
	if f := schema["Hop"]; f["produce"].num != hopProduce || f["expected"].num != hopExpected || f["groups"].num != hopGroups {
		t.Errorf("Hop nested fields %+v", f)
	}
}

func check(t *testing.T, fields map[string]protoField, typ reflect.Type, special map[string]bool, encode func(any) []byte) {
	t.Helper()
	if fields == nil {
		t.Fatalf("%s: no such message in trail.proto", typ)
	}
	n := 0
	for i := range typ.NumField() {
		sf := typ.Field(i)
		name := snake(sf.Name)
		pf, ok := fields[name]
		if !ok {
			t.Errorf("%s.%s: no proto field %q", typ, sf.Name, name)
			continue
		}
		n++
		if special[name] {
			continue
		}
		p := reflect.New(typ)
		fv := p.Elem().Field(i)
		switch fv.Kind() {
		case reflect.String:
			fv.SetString("x")
		case reflect.Int32, reflect.Int64:
			fv.SetInt(-5)
		case reflect.Uint8, reflect.Uint32, reflect.Uint64:
			fv.SetUint(2)
		case reflect.Bool:
			fv.SetBool(true)
		default:
			t.Fatalf("%s.%s: unhandled kind %s", typ, sf.Name, fv.Kind())
		}
		b := encode(p.Interface())
		if typ == reflect.TypeFor[ExpectedGroup]() {
			// Dig the Expected message out of Trail→Hop→Expected.
			h, _ := parseHeader(b)
			b = nested(t, nested(t, h.body, trHops), hopExpected)
		}
		num, wt, l := protowire.ConsumeTag(b)
		if l < 0 {
			t.Errorf("%s: bad tag: %v", name, protowire.ParseError(l))
			continue
		}
		if num != pf.num {
			t.Errorf("%s.%s: encoded as field %d, proto says %d", typ, name, num, pf.num)
		}
		b = b[l:]
		var good bool
		switch pf.typ {
		case "string":
			s, m := protowire.ConsumeString(b)
			good, l = wt == protowire.BytesType && s == "x", m
		case "sint32", "sint64":
			x, m := protowire.ConsumeVarint(b)
			good, l = wt == protowire.VarintType && protowire.DecodeZigZag(x) == -5, m
		case "uint32", "uint64":
			x, m := protowire.ConsumeVarint(b)
			good, l = wt == protowire.VarintType && x == 2, m
		case "bool":
			x, m := protowire.ConsumeVarint(b)
			good, l = wt == protowire.VarintType && x == 1, m
		case "sfixed64":
			x, m := protowire.ConsumeFixed64(b)
			good, l = wt == protowire.Fixed64Type && int64(x) == -5, m
		case "fixed64":
			x, m := protowire.ConsumeFixed64(b)
			good, l = wt == protowire.Fixed64Type && x == 2, m
		default:
			t.Fatalf("%s: unhandled proto type %s", name, pf.typ)
		}
		if !good || l != len(b) {
			t.Errorf("%s.%s: not encoded as proto %s (wire type %d, value bytes %x)", typ, name, pf.typ, wt, b)
		}
	}
	if n != len(fields) {
		t.Errorf("%s: proto has %d fields, struct matches %d", typ, len(fields), n)
	}
}

// nested returns the value of the first field num of msg.
func nested(t *testing.T, msg []byte, num protowire.Number) []byte {
	t.Helper()
	for len(msg) > 0 {
		n, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			t.Fatalf("bad tag")
		}
		msg = msg[l:]
		if n == num && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(msg)
			return v
		}
		l = protowire.ConsumeFieldValue(n, typ, msg)
		msg = msg[l:]
	}
	t.Fatalf("no field %d", num)
	return nil
}

// A known field with another wire type is malformed, not misread.
func TestTrailWrongWireTypeIsMalformed(t *testing.T) {
	b := []byte{formatV2, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	b = protowire.AppendTag(b, trID, protowire.VarintType)
	b = protowire.AppendVarint(b, 7)
	var tr Trail
	if err := UnmarshalTrail(b, &tr); err == nil {
		t.Error("correlation_id as a varint decoded")
	}
}

func FuzzUnmarshalTrail(f *testing.F) {
	f.Add(AppendTrail(nil, sampleTrail()))
	if v1, err := os.ReadFile("testdata/trail_v1.bin"); err == nil {
		f.Add(v1)
	}
	f.Add([]byte{0x0a, 0xff})
	f.Add([]byte(`{"id":"x","topic":"t"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var tr Trail
		if UnmarshalTrail(b, &tr) != nil {
			return
		}
		// What decodes re-encodes to the same trail...
		enc := AppendTrail(nil, &tr)
		var again Trail
		if err := UnmarshalTrail(enc, &again); err != nil {
			t.Fatalf("re-encoded trail does not decode: %v", err)
		}
		if !reflect.DeepEqual(normal(&tr), normal(&again)) {
			t.Fatalf("re-encoded trail differs:\n%+v\n%+v", tr, again)
		}
		// ...and the state machine takes it without failing.
		tm := &timing{nowNs: 1_700_000_000_000_000_000, grace: 1e9, dupWindow: 1e9, confirmAfter: 1e9, recheckAfter: 1e9}
		e := &codecs.Event{Version: 1, Kind: codecs.KindConsume, CorrelationID: tr.CorrelationID, Topic: "t", Group: "g", ConsumeNs: 5}
		tr.Apply(e, policy{deadline: 1e9}, 5, tm)
		tr.Sweep(tm)
	})
}

// normal makes empty slices nil, for comparing decoded trails.
func normal(t *Trail) *Trail {
	c := *t
	if len(c.Hops) == 0 {
		c.Hops = nil
	}
	for i := range c.Hops {
		h := &c.Hops[i]
		if len(h.Expected) == 0 {
			h.Expected = nil
		}
		if len(h.Groups) == 0 {
			h.Groups = nil
		}
	}
	return &c
}
