package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// requestFrame encodes req the way a client does (header v1 or v2).
func requestFrame(req kmsg.Request, corr int32, clientID string) []byte {
	f := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	f = binary.BigEndian.AppendUint16(f, uint16(req.GetVersion()))
	f = binary.BigEndian.AppendUint32(f, uint32(corr))
	f = binary.BigEndian.AppendUint16(f, uint16(len(clientID)))
	f = append(f, clientID...)
	if req.IsFlexible() {
		f = append(f, 0)
	}
	return req.AppendTo(f)
}

func withSize(frame []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...)
}

func TestParseRequestHeader(t *testing.T) {
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(12) // flexible
	fetch := kmsg.NewPtrFetchRequest()
	fetch.SetVersion(4) // not flexible
	for _, req := range []kmsg.Request{meta, fetch} {
		frame := requestFrame(req, 42, "my-client")
		h, err := ParseRequestHeader(frame)
		if err != nil {
			t.Fatalf("%T: %v", req, err)
		}
		if h.Key != req.Key() || h.Version != req.GetVersion() || h.CorrelationID != 42 || h.ClientID != "my-client" || h.Flexible != req.IsFlexible() {
			t.Errorf("%T: header %+v", req, h)
		}
		// The body after the header decodes as the request.
		dec := kmsg.RequestForKey(h.Key)
		dec.SetVersion(h.Version)
		if err := dec.ReadFrom(frame[h.BodyOffset:]); err != nil {
			t.Errorf("%T: body at %d does not decode: %v", req, h.BodyOffset, err)
		}
	}
}

func TestParseRequestHeaderRejects(t *testing.T) {
	good := requestFrame(kmsg.NewPtrMetadataRequest(), 1, "c")
	unknownKey := append([]byte(nil), good...)
	binary.BigEndian.PutUint16(unknownKey, 999)
	tooNew := append([]byte(nil), good...)
	binary.BigEndian.PutUint16(tooNew[2:], 999)
	badID := append([]byte(nil), good[:8]...)
	badID = binary.BigEndian.AppendUint16(badID, 500)
	for name, tc := range map[string]struct {
		frame []byte
		want  string
	}{
		"short":           {good[:5], "shorter than a request header"},
		"unknown key":     {unknownKey, "unknown API key 999"},
		"unknown version": {tooNew, "above the highest known version"},
		"client id":       {badID, "client id of 500 bytes runs past"},
	} {
		_, err := ParseRequestHeader(tc.frame)
		var fe *FrameError
		if !errors.As(err, &fe) || !strings.Contains(fe.Reason, tc.want) {
			t.Errorf("%s: got %v, want a FrameError with %q", name, err, tc.want)
		}
	}
}

func TestReadFrame(t *testing.T) {
	frame := []byte("hello")
	stream := append(withSize(frame), withSize([]byte("x"))...)
	r := bufio.NewReader(bytes.NewReader(stream))
	got, err := readFrame(r, 100)
	if err != nil || string(got) != "hello" {
		t.Fatalf("first frame: %q, %v", got, err)
	}
	if got, err = readFrame(r, 100); err != nil || string(got) != "x" {
		t.Fatalf("second frame: %q, %v", got, err)
	}
	if _, err = readFrame(r, 100); !errors.Is(err, errCleanEOF) {
		t.Fatalf("at the end: %v, want a clean EOF", err)
	}

	var fe *FrameError
	_, err = readFrame(bufio.NewReader(bytes.NewReader(withSize(make([]byte, 101)))), 100)
	if !errors.As(err, &fe) || fe.Truncated || !strings.Contains(fe.Reason, "over the limit of 100") {
		t.Errorf("oversized: %v", err)
	}
	_, err = readFrame(bufio.NewReader(bytes.NewReader(withSize(frame)[:6])), 100)
	if !errors.As(err, &fe) || !fe.Truncated || !strings.Contains(fe.Reason, "2 of 5 bytes") {
		t.Errorf("truncated: %v", err)
	}
	_, err = readFrame(bufio.NewReader(bytes.NewReader([]byte{0, 0})), 100)
	if !errors.As(err, &fe) || !fe.Truncated {
		t.Errorf("truncated size: %v", err)
	}
	_, err = readFrame(bufio.NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff})), 100)
	if !errors.As(err, &fe) || fe.Truncated {
		t.Errorf("negative size: %v", err)
	}
}

func TestSkipTags(t *testing.T) {
	// Two tags: key 0 size 2, key 5 size 0.
	b := []byte{2, 0, 2, 0xaa, 0xbb, 5, 0, 0x99}
	n, err := skipTags(b)
	if err != nil || n != 7 {
		t.Fatalf("skipTags = %d, %v; want 7", n, err)
	}
	for _, bad := range [][]byte{{}, {1}, {1, 0}, {1, 0, 5, 1}, {0xff, 0xff, 0xff, 0xff, 0x0f}} {
		if _, err := skipTags(bad); err == nil {
			t.Errorf("skipTags(%x) accepted", bad)
		}
	}
}

// FuzzParseRequest feeds arbitrary bytes to the frame reader and the header
// parser: they must return a frame or an error, never panic, and a parsed
// header must lie inside its frame.
func FuzzParseRequest(f *testing.F) {
	f.Add(withSize(requestFrame(kmsg.NewPtrMetadataRequest(), 7, "client")))
	f.Add(withSize(requestFrame(kmsg.NewPtrProduceRequest(), 1, "")))
	f.Add([]byte{0, 0, 0, 3, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		for {
			frame, err := readFrame(r, 1<<16)
			if err != nil {
				return
			}
			if len(frame) > 1<<16 {
				t.Fatalf("frame of %d bytes over the limit", len(frame))
			}
			h, err := ParseRequestHeader(frame)
			if err != nil {
				var fe *FrameError
				if !errors.As(err, &fe) {
					t.Fatalf("error %v is not a FrameError", err)
				}
				continue
			}
			if h.BodyOffset < 10 || h.BodyOffset > len(frame) {
				t.Fatalf("body offset %d outside the %d-byte frame", h.BodyOffset, len(frame))
			}
			if kmsg.RequestForKey(h.Key) == nil {
				t.Fatalf("accepted unknown key %d", h.Key)
			}
		}
	})
}
