package codecs_test

import (
	"bufio"
	"errors"
	"math"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kaudit/kaudit/codecs"
)

func TestEventRoundTrip(t *testing.T) {
	for name, e := range map[string]codecs.Event{
		"produce":   produceEvent(),
		"consume":   consumeEvent(),
		"max":       extremeEvent(+1),
		"min":       extremeEvent(-1),
		"failed":    {Version: 1, Kind: codecs.KindProduce, CorrelationID: "c", Topic: "t", Partition: -1, Offset: -1, SendNs: 5, Error: "NOT_LEADER_FOR_PARTITION"},
		"required":  {Version: 1, Kind: codecs.KindProduce, CorrelationID: "c", Topic: "t"},
		"drops":     dropsEvent(),
		"drops max": extremeDrops(+1),
		"drops min": extremeDrops(-1),
		"drops required": {Version: 1, Kind: codecs.KindDrops, CorrelationID: "c", Topic: "t",
			Dropped: 1, WindowStartNs: 5, WindowEndNs: 5, DroppedKind: codecs.KindProduce},
	} {
		t.Run(name, func(t *testing.T) {
			b := codecs.AppendEvent(nil, &e)
			// Decode into a used event: every field must be reset.
			got := extremeEvent(-1)
			got.Group, got.Host, got.Source = "old", "old", "old"
			if err := codecs.UnmarshalEvent(b, &got); err != nil {
				t.Fatalf("UnmarshalEvent: %v", err)
			}
			if got != e {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, e)
			}
		})
	}
}

func TestVerdictRoundTrip(t *testing.T) {
	for name, v := range map[string]codecs.Verdict{
		"delivered": deliveredVerdict(),
		"max":       extremeVerdict(+1),
		"min":       extremeVerdict(-1),
		"required":  {Version: 1, CorrelationID: "c", Topic: "t", Group: "g", Status: codecs.StatusLost},
	} {
		t.Run(name, func(t *testing.T) {
			b := codecs.AppendVerdict(nil, &v)
			got := extremeVerdict(-1)
			got.ProducerHost, got.ConsumerHost = "old", "old"
			if err := codecs.UnmarshalVerdict(b, &got); err != nil {
				t.Fatalf("UnmarshalVerdict: %v", err)
			}
			if got != v {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, v)
			}
		})
	}
}

func TestAppendKeepsPrefix(t *testing.T) {
	e, v := produceEvent(), deliveredVerdict()
	for _, prefix := range [][]byte{nil, []byte("head"), make([]byte, 3, 1000)} {
		want := string(prefix)
		b := codecs.AppendEvent(prefix, &e)
		if string(b[:len(want)]) != want || len(b) == len(want) {
			t.Fatalf("AppendEvent(%q) = %q", want, b)
		}
		var got codecs.Event
		if err := codecs.UnmarshalEvent(b[len(want):], &got); err != nil || got != e {
			t.Fatalf("decode after prefix %q: %v, %+v", want, err, got)
		}
		b = codecs.AppendVerdict(prefix, &v)
		var gv codecs.Verdict
		if err := codecs.UnmarshalVerdict(b[len(want):], &gv); err != nil || gv != v {
			t.Fatalf("decode verdict after prefix %q: %v, %+v", want, err, gv)
		}
	}
	if b := codecs.AppendEvent([]byte("x"), nil); string(b) != "x" {
		t.Fatalf("AppendEvent(nil event) = %q", b)
	}
	if err := codecs.UnmarshalEvent(codecs.AppendEvent(nil, &e), nil); err == nil {
		t.Fatal("UnmarshalEvent into nil: no error")
	}
	if err := codecs.UnmarshalVerdict(codecs.AppendVerdict(nil, &v), nil); err == nil {
		t.Fatal("UnmarshalVerdict into nil: no error")
	}
}

// TestDecodedStringsDoNotAliasInput checks that the caller may reuse its
// buffer after decoding.
func TestDecodedStringsDoNotAliasInput(t *testing.T) {
	e := produceEvent()
	b := codecs.AppendEvent(nil, &e)
	var got codecs.Event
	if err := codecs.UnmarshalEvent(b, &got); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'Z'
	}
	if got != e {
		t.Fatalf("decoded event changed with its input: %+v", got)
	}
}

// protoFields parses audit.proto: message -> field name -> (type, number).
func protoFields(t *testing.T) map[string]map[string]protoField {
	t.Helper()
	f, err := os.Open("audit.proto")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	msgRe := regexp.MustCompile(`^message (\w+) \{`)
	fieldRe := regexp.MustCompile(`^\s+(\w+) (\w+) = (\d+);`)
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
			n, _ := strconv.Atoi(m[3])
			out[cur][m[2]] = protoField{typ: m[1], num: protowire.Number(n)}
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

// TestWireMatchesProto encodes a record with exactly one field set, for each
// field, and checks that the bytes are that field as audit.proto declares it:
// number, wire type and value encoding.
func TestWireMatchesProto(t *testing.T) {
	schema := protoFields(t)
	checkSchema(t, schema["AuditEvent"], reflect.TypeFor[codecs.Event](), func(p any) []byte {
		return codecs.AppendEvent(nil, p.(*codecs.Event))
	})
	checkSchema(t, schema["Verdict"], reflect.TypeFor[codecs.Verdict](), func(p any) []byte {
		return codecs.AppendVerdict(nil, p.(*codecs.Verdict))
	})
}

func checkSchema(t *testing.T, fields map[string]protoField, typ reflect.Type, encode func(any) []byte) {
	t.Helper()
	if len(fields) != typ.NumField() {
		t.Errorf("%s: proto has %d fields, struct has %d", typ, len(fields), typ.NumField())
	}
	seen := map[protowire.Number]string{}
	for i := range typ.NumField() {
		sf := typ.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "v" {
			name = "version"
		}
		pf, ok := fields[name]
		if !ok {
			t.Errorf("%s.%s: no proto field %q", typ, sf.Name, name)
			continue
		}
		if other, dup := seen[pf.num]; dup {
			t.Errorf("field number %d used by %s and %s", pf.num, other, name)
		}
		seen[pf.num] = name

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
		num, wt, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Errorf("%s: bad tag: %v", name, protowire.ParseError(n))
			continue
		}
		if num != pf.num {
			t.Errorf("%s: encoded as field %d, proto says %d", name, num, pf.num)
		}
		b = b[n:]
		var ok2 bool
		switch pf.typ {
		case "string":
			s, m := protowire.ConsumeString(b)
			ok2, n = wt == protowire.BytesType && s == "x", m
		case "sint32", "sint64":
			x, m := protowire.ConsumeVarint(b)
			ok2, n = wt == protowire.VarintType && protowire.DecodeZigZag(x) == -5, m
		case "uint32", "uint64", "Kind", "Status":
			x, m := protowire.ConsumeVarint(b)
			ok2, n = wt == protowire.VarintType && x == 2, m
		case "bool":
			x, m := protowire.ConsumeVarint(b)
			ok2, n = wt == protowire.VarintType && x == 1, m
		case "sfixed64":
			x, m := protowire.ConsumeFixed64(b)
			ok2, n = wt == protowire.Fixed64Type && int64(x) == -5, m
		case "fixed64":
			x, m := protowire.ConsumeFixed64(b)
			ok2, n = wt == protowire.Fixed64Type && x == 2, m
		default:
			t.Fatalf("%s: unhandled proto type %s", name, pf.typ)
		}
		if !ok2 || n != len(b) {
			t.Errorf("%s: not encoded as proto %s (wire type %d, value bytes %x)", name, pf.typ, wt, b)
		}
	}
}

// fieldBoundaries returns the offsets at which a field of msg starts or the
// message ends.
func fieldBoundaries(t *testing.T, msg []byte) map[int]bool {
	t.Helper()
	at := map[int]bool{0: true}
	for off := 0; off < len(msg); {
		_, _, n := protowire.ConsumeField(msg[off:])
		if n < 0 {
			t.Fatalf("own encoding does not parse at %d: %v", off, protowire.ParseError(n))
		}
		off += n
		at[off] = true
	}
	return at
}

func TestTruncatedInputIsMalformed(t *testing.T) {
	e, v := produceEvent(), deliveredVerdict()
	eb, vb := codecs.AppendEvent(nil, &e), codecs.AppendVerdict(nil, &v)
	for _, tc := range []struct {
		name string
		msg  []byte
		dec  func([]byte) error
	}{
		{"event", eb, func(b []byte) error { var e codecs.Event; return codecs.UnmarshalEvent(b, &e) }},
		{"verdict", vb, func(b []byte) error { var v codecs.Verdict; return codecs.UnmarshalVerdict(b, &v) }},
	} {
		bounds := fieldBoundaries(t, tc.msg)
		for i := range len(tc.msg) {
			err := tc.dec(tc.msg[:i])
			// A cut inside a field is malformed. A cut between fields is a
			// shorter valid encoding (protobuf has no length or end marker):
			// it fails validation while required fields are missing and
			// decodes otherwise.
			if !bounds[i] && !errors.Is(err, codecs.ErrMalformed) {
				t.Errorf("%s cut at %d/%d: %v, want ErrMalformed", tc.name, i, len(tc.msg), err)
			}
			if bounds[i] && errors.Is(err, codecs.ErrMalformed) {
				t.Errorf("%s cut at field boundary %d: %v", tc.name, i, err)
			}
		}
	}
}

func tag(num protowire.Number, typ protowire.Type) []byte {
	return protowire.AppendTag(nil, num, typ)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestMalformedEvent(t *testing.T) {
	e := consumeEvent()
	valid := codecs.AppendEvent(nil, &e)
	varint := func(v uint64) []byte { return protowire.AppendVarint(nil, v) }
	for name, tc := range map[string]struct {
		in    []byte
		field string // expected in the message
	}{
		"string as varint":     {cat(valid, tag(3, protowire.VarintType), varint(1)), "field 3"},
		"varint as bytes":      {cat(tag(1, protowire.BytesType), varint(1), []byte{1}, valid), "field 1"},
		"fixed64 as varint":    {cat(valid, tag(11, protowire.VarintType), varint(1)), "field 11"},
		"varint as fixed32":    {cat(valid, tag(5, protowire.Fixed32Type), []byte{1, 2, 3, 4}), "field 5"},
		"version overflow":     {cat(valid, tag(1, protowire.VarintType), varint(1<<32+1)), "field 1"},
		"kind overflow":        {cat(valid, tag(2, protowire.VarintType), varint(257)), "field 2"},
		"partition overflow":   {cat(valid, tag(5, protowire.VarintType), varint(1<<32)), "field 5"},
		"payload overflow":     {cat(valid, tag(15, protowire.VarintType), varint(math.MaxUint64)), "field 15"},
		"varint too long":      {cat(valid, tag(6, protowire.VarintType), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}), "field 6"},
		"varint unterminated":  {cat(valid, tag(6, protowire.VarintType), []byte{0xff, 0xff}), "field 6"},
		"string past end":      {cat(valid, tag(4, protowire.BytesType), varint(100), []byte("abc")), "field 4"},
		"string huge length":   {cat(valid, tag(4, protowire.BytesType), varint(math.MaxUint64)), "field 4"},
		"fixed64 short":        {cat(valid, tag(16, protowire.Fixed64Type), []byte{1, 2, 3}), "field 16"},
		"field number zero":    {cat(valid, []byte{0x00}), "tag"},
		"reserved wire type":   {cat(valid, tag(99, 6)), "field 99"},
		"end group at top":     {cat(valid, tag(99, protowire.EndGroupType)), "field 99"},
		"unterminated group":   {cat(valid, tag(99, protowire.StartGroupType), tag(1, protowire.VarintType), varint(1)), "field 99"},
		"mismatched group end": {cat(valid, tag(99, protowire.StartGroupType), tag(98, protowire.EndGroupType)), "field 99"},
		"unknown bytes short":  {cat(valid, tag(99, protowire.BytesType), varint(2), []byte{1}), "field 99"},
		"tag truncated":        {cat(valid, []byte{0x80}), "tag"},
	} {
		t.Run(name, func(t *testing.T) {
			var got codecs.Event
			err := codecs.UnmarshalEvent(tc.in, &got)
			if !errors.Is(err, codecs.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tc.field) || !strings.HasPrefix(err.Error(), "codecs: event ") {
				t.Fatalf("err = %q, want it to name %q", err, tc.field)
			}
		})
	}
}

func TestMalformedVerdict(t *testing.T) {
	v := deliveredVerdict()
	valid := codecs.AppendVerdict(nil, &v)
	for name, in := range map[string][]byte{
		"status overflow":  cat(valid, tag(5, protowire.VarintType), protowire.AppendVarint(nil, 300)),
		"count overflow":   cat(valid, tag(22, protowire.VarintType), protowire.AppendVarint(nil, 1<<33)),
		"group as fixed64": cat(valid, tag(4, protowire.Fixed64Type), make([]byte, 8)),
		"truncated":        valid[:len(valid)-1],
		"garbage":          []byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
	} {
		var got codecs.Verdict
		if err := codecs.UnmarshalVerdict(in, &got); !errors.Is(err, codecs.ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestInvalidButWellFormed(t *testing.T) {
	events := map[string]codecs.Event{
		"empty":               {},
		"version 0":           {Kind: codecs.KindProduce, CorrelationID: "c", Topic: "t"},
		"future version":      {Version: codecs.SchemaVersion + 1, Kind: codecs.KindProduce, CorrelationID: "c", Topic: "t"},
		"unknown kind":        {Version: 1, Kind: 9, CorrelationID: "c", Topic: "t"},
		"no correlation":      {Version: 1, Kind: codecs.KindProduce, Topic: "t"},
		"no topic":            {Version: 1, Kind: codecs.KindProduce, CorrelationID: "c"},
		"consume w/o group":   {Version: 1, Kind: codecs.KindConsume, CorrelationID: "c", Topic: "t"},
		"consume, empty kind": {Version: 1, CorrelationID: "c", Topic: "t", Group: "g"},
		"kind 4":              {Version: 1, Kind: codecs.KindDrops + 1, CorrelationID: "c", Topic: "t"},
		"produce with drops":  {Version: 1, Kind: codecs.KindProduce, CorrelationID: "c", Topic: "t", Dropped: 1},
		"consume with window": {Version: 1, Kind: codecs.KindConsume, CorrelationID: "c", Topic: "t", Group: "g", WindowEndNs: 1},
		"produce, drop kind":  {Version: 1, Kind: codecs.KindProduce, CorrelationID: "c", Topic: "t", DroppedKind: codecs.KindConsume},
	}
	for name, mutate := range map[string]func(*codecs.Event){
		"drops, no correlation": func(e *codecs.Event) { e.CorrelationID = "" },
		"drops, no topic":       func(e *codecs.Event) { e.Topic = "" },
		"drops, zero dropped":   func(e *codecs.Event) { e.Dropped = 0 },
		"drops, kind unknown":   func(e *codecs.Event) { e.DroppedKind = codecs.KindUnknown },
		"drops, kind drops":     func(e *codecs.Event) { e.DroppedKind = codecs.KindDrops },
		"drops, kind 9":         func(e *codecs.Event) { e.DroppedKind = 9 },
		"drops, no start":       func(e *codecs.Event) { e.WindowStartNs = 0 },
		"drops, negative start": func(e *codecs.Event) { e.WindowStartNs = -1 },
		"drops, end < start":    func(e *codecs.Event) { e.WindowEndNs = e.WindowStartNs - 1 },
	} {
		e := dropsEvent()
		mutate(&e)
		events[name] = e
	}
	for name, e := range events {
		var got codecs.Event
		err := codecs.UnmarshalEvent(codecs.AppendEvent(nil, &e), &got)
		if err == nil || errors.Is(err, codecs.ErrMalformed) {
			t.Errorf("event %s: err = %v, want a validation error", name, err)
		}
	}
	ok := deliveredVerdict()
	verdicts := map[string]func(*codecs.Verdict){
		"version 0":      func(v *codecs.Verdict) { v.Version = 0 },
		"future version": func(v *codecs.Verdict) { v.Version = codecs.SchemaVersion + 1 },
		"no correlation": func(v *codecs.Verdict) { v.CorrelationID = "" },
		"no topic":       func(v *codecs.Verdict) { v.Topic = "" },
		"no group":       func(v *codecs.Verdict) { v.Group = "" },
		"status 0":       func(v *codecs.Verdict) { v.Status = codecs.StatusUnknown },
		"status 8":       func(v *codecs.Verdict) { v.Status = codecs.StatusCorrupted + 1 },
	}
	for name, mutate := range verdicts {
		v := ok
		mutate(&v)
		var got codecs.Verdict
		err := codecs.UnmarshalVerdict(codecs.AppendVerdict(nil, &v), &got)
		if err == nil || errors.Is(err, codecs.ErrMalformed) {
			t.Errorf("verdict %s: err = %v, want a validation error", name, err)
		}
	}
}

// unknownFields has one unknown field of every wire type, including a nested
// group, as a newer writer might add.
func unknownFields() []byte {
	b := cat(tag(100, protowire.VarintType), protowire.AppendVarint(nil, math.MaxUint64))
	b = cat(b, tag(101, protowire.Fixed32Type), []byte{1, 2, 3, 4})
	b = cat(b, tag(102, protowire.Fixed64Type), []byte{1, 2, 3, 4, 5, 6, 7, 8})
	b = cat(b, tag(103, protowire.BytesType), protowire.AppendString(nil, "future"))
	b = cat(b, tag(104, protowire.StartGroupType),
		tag(1, protowire.BytesType), protowire.AppendString(nil, "inner"),
		tag(2, protowire.StartGroupType), tag(2, protowire.EndGroupType),
		tag(104, protowire.EndGroupType))
	return b
}

func TestUnknownFieldsSkipped(t *testing.T) {
	e, v := produceEvent(), deliveredVerdict()
	u := unknownFields()
	eb, vb := codecs.AppendEvent(nil, &e), codecs.AppendVerdict(nil, &v)
	// Unknown fields before, between (after the first field, two bytes of
	// version) and after the known ones.
	var gotE codecs.Event
	if err := codecs.UnmarshalEvent(cat(u, eb[:2], u, eb[2:], u), &gotE); err != nil || gotE != e {
		t.Fatalf("event with unknown fields: %v, %+v", err, gotE)
	}
	var gotV codecs.Verdict
	if err := codecs.UnmarshalVerdict(cat(u, vb[:2], u, vb[2:], u), &gotV); err != nil || gotV != v {
		t.Fatalf("verdict with unknown fields: %v, %+v", err, gotV)
	}
}

func TestRepeatedFieldLastWins(t *testing.T) {
	e := produceEvent()
	b := cat(codecs.AppendEvent(nil, &e), tag(4, protowire.BytesType), protowire.AppendString(nil, "later"))
	var got codecs.Event
	if err := codecs.UnmarshalEvent(b, &got); err != nil || got.Topic != "later" {
		t.Fatalf("got %v, topic %q; want topic \"later\"", err, got.Topic)
	}
}

func TestAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	e, v := produceEvent(), deliveredVerdict()
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() { buf = codecs.AppendEvent(buf[:0], &e) }); n != 0 {
		t.Errorf("AppendEvent into a large enough buffer: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { buf = codecs.AppendVerdict(buf[:0], &v) }); n != 0 {
		t.Errorf("AppendVerdict into a large enough buffer: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = codecs.AppendEvent(nil, &e) }); n != 1 {
		t.Errorf("AppendEvent(nil): %v allocs, want 1", n)
	}
	eb := codecs.AppendEvent(nil, &e)
	var got codecs.Event
	if n := testing.AllocsPerRun(100, func() { _ = codecs.UnmarshalEvent(eb, &got) }); n != 1 {
		t.Errorf("UnmarshalEvent: %v allocs, want 1", n)
	}
	vb := codecs.AppendVerdict(nil, &v)
	var gotV codecs.Verdict
	if n := testing.AllocsPerRun(100, func() { _ = codecs.UnmarshalVerdict(vb, &gotV) }); n != 1 {
		t.Errorf("UnmarshalVerdict: %v allocs, want 1", n)
	}
}

func TestEventTime(t *testing.T) {
	failed := codecs.Event{Kind: codecs.KindProduce, SendNs: 5}
	for name, tc := range map[string]struct {
		e    codecs.Event
		want int64
	}{
		"produce": {produceEvent(), produceEvent().AckNs},
		"failed":  {failed, 5},
		"consume": {codecs.Event{Kind: codecs.KindConsume, SendNs: 1, AckNs: 2, ConsumeNs: 3}, 3},
		"drops":   {dropsEvent(), dropsEvent().WindowEndNs},
	} {
		if got := tc.e.TimeNs(); got != tc.want {
			t.Errorf("%s: TimeNs = %d, want %d", name, got, tc.want)
		}
	}
}

func TestKindText(t *testing.T) {
	for _, k := range []codecs.Kind{codecs.KindProduce, codecs.KindConsume, codecs.KindDrops} {
		b, err := k.MarshalText()
		if err != nil {
			t.Fatalf("%d: %v", k, err)
		}
		var got codecs.Kind
		if err := got.UnmarshalText(b); err != nil || got != k {
			t.Errorf("%q: %v, %v; want %v", b, got, err, k)
		}
	}
	if want := []string{"produce", "consume", "drops"}; codecs.KindProduce.String() != want[0] ||
		codecs.KindConsume.String() != want[1] || codecs.KindDrops.String() != want[2] {
		t.Errorf("kind names %v", want)
	}
	if _, err := codecs.Kind(4).MarshalText(); err == nil {
		t.Error("kind 4 marshals")
	}
}
