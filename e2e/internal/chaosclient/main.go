// Command chaosclient is an audited franz-go producer or consumer-group
// member that writes down what it did, for the black-box tests in e2e: the
// tests derive the expected verdicts from these records, never from kaudit.
//
//	chaosclient produce --brokers B --topic orders --prefix go --count 1000 --rate 40 --log produced.jsonl
//	chaosclient consume --brokers B --topic orders --group payments --log polled.jsonl [--stall-after 100 --stall-for 45s]
//
// A consumer commits after it has written down each poll. On "pause" (a
// line on stdin) it polls once more without committing (a batch the group
// will deliver again), stops polling, flushes its audit emitter and prints
// "paused", so a test can SIGKILL it knowing that everything it polled was
// both written down and audited; on "stop" it closes cleanly.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/interceptors/emitter"
	"github.com/kaudit/kaudit/interceptors/kgoaudit"
)

// Record is one line of a log.
type Record struct {
	Value     string `json:"v"`
	Partition int32  `json:"p"`
	Offset    int64  `json:"o"`
	ID        string `json:"id"`
	AtNs      int64  `json:"t"`             // ack time (produce) or poll time (consume)
	Err       string `json:"err,omitempty"` // produce error
	Client    string `json:"c,omitempty"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: chaosclient produce|consume [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "bootstrap servers")
	topic := fs.String("topic", "orders", "topic")
	group := fs.String("group", "", "consumer group")
	clientID := fs.String("client-id", "", "client id")
	logPath := fs.String("log", "", "where to write down what was done (JSON lines)")
	prefix := fs.String("prefix", "go", "value prefix of produced messages")
	count := fs.Int("count", 100, "messages to produce")
	rate := fs.Int("rate", 50, "messages per second")
	stallAfter := fs.Int("stall-after", 0, "stop polling after this many records (0: never)")
	stallFor := fs.Duration("stall-for", 0, "for this long")
	session := fs.Duration("session-timeout", 6*time.Second, "group session timeout")
	_ = fs.Parse(os.Args[2:])

	out, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fail(err)
	}
	defer out.Close()
	em, err := emitter.New(emitter.Config{Brokers: strings.Split(*brokers, ",")})
	if err != nil {
		fail(err)
	}
	switch os.Args[1] {
	case "produce":
		produce(*brokers, *topic, *clientID, *prefix, *count, *rate, em, out)
	case "consume":
		consume(*brokers, *topic, *group, *clientID, *session, *stallAfter, *stallFor, em, out)
	default:
		fail(fmt.Errorf("unknown mode %q", os.Args[1]))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "chaosclient:", err)
	os.Exit(1)
}

func write(out *os.File, mu *sync.Mutex, r Record) {
	b, _ := json.Marshal(r)
	mu.Lock()
	defer mu.Unlock()
	if _, err := out.Write(append(b, '\n')); err != nil {
		fail(err)
	}
	if err := out.Sync(); err != nil {
		fail(err)
	}
}

func header(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == audit.CorrelationHeader {
			return string(h.Value)
		}
	}
	return ""
}

func produce(brokers, topic, clientID, prefix string, count, rate int, em *emitter.Emitter, out *os.File) {
	if clientID == "" {
		clientID = prefix + "-producer"
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...), kgo.ClientID(clientID),
		kgo.DefaultProduceTopic(topic), kgo.WithHooks(kgoaudit.New(em)))
	if err != nil {
		fail(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(max(rate, 1)))
	defer tick.Stop()
	for i := range count {
		<-tick.C
		wg.Add(1)
		cl.Produce(context.Background(), &kgo.Record{Value: fmt.Appendf(nil, "%s-%d", prefix, i)}, func(r *kgo.Record, err error) {
			defer wg.Done()
			rec := Record{Value: string(r.Value), Partition: r.Partition, Offset: r.Offset, ID: header(r), AtNs: time.Now().UnixNano(), Client: clientID}
			if err != nil {
				rec.Err = err.Error()
			}
			write(out, &mu, rec)
		})
	}
	wg.Wait()
	cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := em.Close(ctx); err != nil {
		fail(err)
	}
	fmt.Println("produced")
}

func consume(brokers, topic, group, clientID string, session time.Duration, stallAfter int, stallFor time.Duration, em *emitter.Emitter, out *os.File) {
	if clientID == "" {
		clientID = group + "-" + fmt.Sprint(os.Getpid())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...), kgo.ClientID(clientID),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(), kgo.SessionTimeout(session),
		kgo.HeartbeatInterval(session/4), kgo.WithHooks(kgoaudit.New(em)))
	if err != nil {
		fail(err)
	}
	cmds := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- strings.TrimSpace(sc.Text())
		}
	}()
	var mu sync.Mutex
	polled := 0
	fmt.Println("started")
	for {
		select {
		case c := <-cmds:
			switch c {
			case "pause":
				// Poll until a poll returns records (20 s at most): the
				// scenario needs a batch the group delivers again.
				pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
				for n := 0; n == 0 && pctx.Err() == nil; {
					fetches := cl.PollRecords(pctx, 20)
					now := time.Now().UnixNano()
					fetches.EachRecord(func(r *kgo.Record) {
						n++
						write(out, &mu, Record{Value: string(r.Value), Partition: r.Partition, Offset: r.Offset, ID: header(r), AtNs: now, Client: clientID})
					})
				}
				pcancel()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := em.Close(ctx) // every audit event of every poll is sent
				cancel()
				if err != nil {
					fail(err)
				}
				fmt.Println("paused")
				select {} // wait to be killed, still in the group
			case "stop":
				cl.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if err := em.Close(ctx); err != nil {
					fail(err)
				}
				fmt.Println("stopped")
				return
			}
		default:
		}
		if stallAfter > 0 && polled >= stallAfter {
			stallAfter = 0
			fmt.Println("stalling")
			time.Sleep(stallFor) // the consumer is stalled: that is the scenario
			fmt.Println("resumed")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		fetches := cl.PollRecords(ctx, 50)
		cancel()
		now := time.Now().UnixNano()
		var recs []*kgo.Record
		fetches.EachRecord(func(r *kgo.Record) {
			recs = append(recs, r)
			write(out, &mu, Record{Value: string(r.Value), Partition: r.Partition, Offset: r.Offset, ID: header(r), AtNs: now, Client: clientID})
		})
		polled += len(recs)
		if len(recs) > 0 {
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := cl.CommitRecords(cctx, recs...); err != nil {
				fmt.Fprintln(os.Stderr, "chaosclient: commit:", err)
			}
			ccancel()
		}
		cl.AllowRebalance()
	}
}
