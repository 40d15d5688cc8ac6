package codecs_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/lovoo/goka"

	"github.com/kaudit/kaudit/codecs"
)

var (
	_ goka.Codec = codecs.EventCodec{}
	_ goka.Codec = codecs.EventJSONCodec{}
	_ goka.Codec = codecs.VerdictCodec{}
	_ goka.Codec = codecs.VerdictJSONCodec{}
)

func TestEventCodecs(t *testing.T) {
	e := produceEvent()
	for name, c := range map[string]goka.Codec{"binary": codecs.EventCodec{}, "json": codecs.EventJSONCodec{}} {
		for _, in := range []any{&e, e} {
			b, err := c.Encode(in)
			if err != nil {
				t.Fatalf("%s: Encode(%T): %v", name, in, err)
			}
			if isJSON := json.Valid(b); isJSON != (name == "json") {
				t.Errorf("%s: Encode wrote %q", name, b)
			}
			out, err := c.Decode(b)
			if err != nil {
				t.Fatalf("%s: Decode: %v", name, err)
			}
			got, ok := out.(*codecs.Event)
			if !ok || *got != e {
				t.Fatalf("%s: Decode = %#v, want *Event %+v", name, out, e)
			}
		}
	}
	// Either codec reads either format.
	bin, _ := codecs.EventCodec{}.Encode(&e)
	if out, err := (codecs.EventJSONCodec{}).Decode(bin); err != nil || *out.(*codecs.Event) != e {
		t.Errorf("EventJSONCodec.Decode(binary) = %v, %v", out, err)
	}
	if !bytes.Equal(bin, codecs.AppendEvent(nil, &e)) {
		t.Errorf("EventCodec.Encode differs from AppendEvent")
	}
}

func TestVerdictCodecs(t *testing.T) {
	v := deliveredVerdict()
	for name, c := range map[string]goka.Codec{"binary": codecs.VerdictCodec{}, "json": codecs.VerdictJSONCodec{}} {
		for _, in := range []any{&v, v} {
			b, err := c.Encode(in)
			if err != nil {
				t.Fatalf("%s: Encode(%T): %v", name, in, err)
			}
			if isJSON := json.Valid(b); isJSON != (name == "json") {
				t.Errorf("%s: Encode wrote %q", name, b)
			}
			out, err := c.Decode(b)
			if err != nil {
				t.Fatalf("%s: Decode: %v", name, err)
			}
			if got, ok := out.(*codecs.Verdict); !ok || *got != v {
				t.Fatalf("%s: Decode = %#v, want *Verdict %+v", name, out, v)
			}
		}
	}
}

func TestCodecErrors(t *testing.T) {
	e, v := produceEvent(), deliveredVerdict()
	bad := e
	bad.Topic = ""
	badV := v
	badV.Status = 0
	for _, tc := range []struct {
		name  string
		c     goka.Codec
		value any
		want  string
	}{
		{"event codec, verdict", codecs.EventCodec{}, &v, "cannot encode *codecs.Verdict as an event"},
		{"event codec, string", codecs.EventCodec{}, "x", "cannot encode string"},
		{"event codec, nil", codecs.EventCodec{}, nil, "cannot encode <nil>"},
		{"event codec, nil ptr", codecs.EventCodec{}, (*codecs.Event)(nil), "nil *codecs.Event"},
		{"event codec, invalid", codecs.EventCodec{}, bad, "without topic"},
		{"event json, verdict", codecs.EventJSONCodec{}, v, "as an event"},
		{"event json, invalid", codecs.EventJSONCodec{}, &bad, "without topic"},
		{"verdict codec, event", codecs.VerdictCodec{}, &e, "cannot encode *codecs.Event as a verdict"},
		{"verdict codec, nil ptr", codecs.VerdictCodec{}, (*codecs.Verdict)(nil), "nil *codecs.Verdict"},
		{"verdict codec, invalid", codecs.VerdictCodec{}, badV, "invalid verdict status"},
		{"verdict json, bytes", codecs.VerdictJSONCodec{}, []byte("{}"), "cannot encode []uint8"},
	} {
		b, err := tc.c.Encode(tc.value)
		if err == nil || !strings.Contains(err.Error(), tc.want) || b != nil {
			t.Errorf("%s: Encode = %q, %v; want error containing %q", tc.name, b, err, tc.want)
		}
	}
	for name, c := range map[string]goka.Codec{
		"event": codecs.EventCodec{}, "event json": codecs.EventJSONCodec{},
		"verdict": codecs.VerdictCodec{}, "verdict json": codecs.VerdictJSONCodec{},
	} {
		for _, in := range [][]byte{nil, []byte("\xff"), []byte(`{"v":1}`)} {
			// The value must be an untyped nil, not a typed nil pointer.
			if out, err := c.Decode(in); err == nil || out != nil {
				t.Errorf("%s: Decode(%q) = %#v, %v; want nil, error", name, in, out, err)
			}
		}
	}
}
