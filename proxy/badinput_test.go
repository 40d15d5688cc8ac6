package proxy_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kaudit/kaudit/internal/testing/itest"
	"github.com/kaudit/kaudit/proxy"
)

func header(key, version int16, corr int32, clientID string) []byte {
	h := binary.BigEndian.AppendUint16(nil, uint16(key))
	h = binary.BigEndian.AppendUint16(h, uint16(version))
	h = binary.BigEndian.AppendUint32(h, uint32(corr))
	h = binary.BigEndian.AppendUint16(h, uint16(len(clientID)))
	return append(h, clientID...)
}

func sized(frame []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(frame))), frame...)
}

// waitClosed reads from c until the proxy closes it.
func waitClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the proxy did not close the connection", what)
	}
}

// TestBadInput sends the proxy malformed and hostile frames on their own
// connections while a franz-go client produces through it: each bad
// connection is closed with its reason logged, the good client never
// notices.
func TestBadInput(t *testing.T) {
	itest.Integration(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	logs := &itest.SyncBuffer{}
	r := start(t, proxy.Config{Upstream: c.ListenAddrs(), MaxFrameBytes: 1 << 20,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})

	good, err := kgo.NewClient(kgo.SeedBrokers(r.p.Addr()), kgo.DefaultProduceTopic("t"))
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	produced := 0
	produce := func() {
		t.Helper()
		for range 10 {
			if err := good.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(produced))}).FirstErr(); err != nil {
				t.Fatalf("good client: %v", err)
			}
			produced++
		}
	}
	produce()

	metaV99 := header(3, 99, 1, "c")
	produceGarbage := append(header(0, 3, 1, "c"), 0xff, 0xff, 0x01)
	cases := []struct {
		name   string
		send   []byte
		reason string
	}{
		{"malformed frame", sized([]byte{0, 3, 0}), "shorter than a request header"},
		{"frame over the limit", binary.BigEndian.AppendUint32(nil, 2<<20), "over the limit of 1048576 bytes"},
		{"unknown API key", sized(header(999, 0, 1, "c")), "unknown API key 999"},
		{"unknown version", sized(metaV99), "Metadata version 99 is above the highest known version"},
		{"malformed request", sized(produceGarbage), "malformed Produce v3 request"},
		{"disconnect mid-request", append(binary.BigEndian.AppendUint32(nil, 100), make([]byte, 10)...), "peer closed inside a frame (10 of 100 bytes)"},
	}
	for _, tc := range cases {
		conn, err := net.Dial("tcp", r.p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(tc.send); err != nil {
			t.Fatal(err)
		}
		if tc.name == "disconnect mid-request" {
			conn.Close()
		} else {
			waitClosed(t, conn, tc.name)
			conn.Close()
		}
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(logs.String(), tc.reason) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no log line with %q:\n%s", tc.name, tc.reason, logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		produce() // everyone else goes on
	}
	if st := r.p.Stats(); st.ProtocolErrors != 5 {
		t.Errorf("%d protocol errors counted, want 5 (the disconnect is not one)", st.ProtocolErrors)
	}

	// An ApiVersions request of a version the proxy does not know is
	// answered, as Kafka does, in v0 with UNSUPPORTED_VERSION.
	conn, err := net.Dial("tcp", r.p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write(sized(header(18, 99, 77, "c")))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		t.Fatalf("ApiVersions v99: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	io.ReadFull(conn, body)
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(0)
	if corr := int32(binary.BigEndian.Uint32(body)); corr != 77 {
		t.Errorf("correlation id %d, want 77", corr)
	}
	if err := resp.ReadFrom(body[4:]); err != nil || resp.ErrorCode != 35 || len(resp.ApiKeys) != 1 {
		t.Errorf("ApiVersions v99 answer: %+v, %v", resp, err)
	}

	got := 0
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for got < produced {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("broker has %d of the %d records the good client produced", got, produced)
		}
		got += len(fs.Records())
	}
}
