package gokaopts

import (
	"bytes"
	"context"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/twmb/franz-go/pkg/kfake"
)

// saramaClients counts the sarama clients alive in the process (each runs
// one metadata goroutine until it is closed).
func saramaClients() int {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 2)
	return bytes.Count(buf.Bytes(), []byte("sarama.(*client).backgroundMetadataUpdater("))
}

// runWithLookup runs a processor that looks a table up until it has read
// one event, stops it, and returns how many sarama clients it left.
func runWithLookup(t *testing.T, c *kfake.Cluster, run int, clients *Clients) int {
	t.Helper()
	before := saramaClients()
	suffix := strconv.Itoa(run)
	read := make(chan struct{}, 1)
	g := goka.DefineGroup(goka.Group("leak-"+suffix),
		goka.Input(goka.Stream("in-"+suffix), new(codec.String), func(ctx goka.Context, msg any) {
			_ = ctx.Lookup(goka.Table("lookup-"+suffix), ctx.Key())
			select {
			case read <- struct{}{}:
			default:
			}
		}),
		goka.Lookup(goka.Table("lookup-"+suffix), new(codec.String)),
	)
	tm, err := goka.NewTopicManager(c.ListenAddrs(), Sarama(nil), TopicManager(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"in-" + suffix, "lookup-" + suffix} {
		if err := tm.EnsureStreamExists(topic, 2); err != nil {
			t.Fatal(err)
		}
	}
	_ = tm.Close()
	proc, err := goka.NewProcessor(c.ListenAddrs(), g, Options(Config{StorageDir: t.TempDir(), Replication: 1, ClientID: "leak", Clients: clients})...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	em, err := goka.NewEmitter(c.ListenAddrs(), goka.Stream("in-"+suffix), new(codec.String),
		goka.WithEmitterProducerBuilder(ProducerBuilder(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := em.EmitSync("k", "v"); err != nil {
		t.Fatal(err)
	}
	_ = em.Finish()
	select {
	case <-read:
	case err := <-done:
		t.Fatalf("processor stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the processor read nothing in 60 s")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if clients != nil {
		if err := clients.Close(); err != nil {
			t.Fatalf("closing the clients: %v", err)
		}
	}
	left := saramaClients() - before
	for deadline := time.Now().Add(5 * time.Second); left > 0 && time.Now().Before(deadline); left = saramaClients() - before {
		time.Sleep(50 * time.Millisecond)
	}
	return left
}

// A processor with a lookup table leaves no sarama client behind when its
// clients are kept in Clients; without, goka leaves its view's.
func TestClientsClosesWhatGokaLeaves(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if left := runWithLookup(t, c, 1, new(Clients)); left != 0 {
		t.Errorf("with Clients: %d sarama clients left after the processor stopped, want 0", left)
	}
	// The same processor without: the test sees goka's leak (it would
	// pass for nothing if goka closed everything itself).
	if left := runWithLookup(t, c, 2, nil); left == 0 {
		t.Errorf("without Clients: no sarama client left; goka closes its views' clients now, and Clients may be dropped")
	}
}
