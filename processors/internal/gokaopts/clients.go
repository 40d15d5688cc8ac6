package gokaopts

import (
	"errors"
	"sync"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// Clients keeps the sarama consumers and topic managers goka builds for one
// processor, its lookup tables' views included, so that all of them can be
// closed when the processor stops: goka (v1.1.17) closes the processor's
// own, but a View built for a Lookup never closes its consumer or its topic
// manager, so every stop of a processor with lookup tables left two sarama
// clients per table behind (their broker connections and metadata
// goroutines: about 30 goroutines per correlator run).
//
//	clients := new(gokaopts.Clients)
//	defer clients.Close()
//	proc, err := goka.NewProcessor(brokers, graph, append(opts, clients.Options(sc, tmc)...)...)
type Clients struct {
	mu     sync.Mutex
	open   []*onceCloser
	closed bool
}

// Options returns the consumer and topic manager builders, with sc and
// tm, whose products Close closes.
func (c *Clients) Options(sc *sarama.Config, tm *goka.TopicManagerConfig) []goka.ProcessorOption {
	consumers := goka.SaramaConsumerBuilderWithConfig(sc)
	managers := goka.TopicManagerBuilderWithConfig(sc, tm)
	return []goka.ProcessorOption{
		goka.WithConsumerSaramaBuilder(func(brokers []string, clientID string) (sarama.Consumer, error) {
			cons, err := consumers(brokers, clientID)
			if err != nil {
				return nil, err
			}
			oc := c.track(cons.Close)
			return trackedConsumer{Consumer: cons, oc: oc}, nil
		}),
		goka.WithTopicManagerBuilder(func(brokers []string) (goka.TopicManager, error) {
			tmgr, err := managers(brokers)
			if err != nil {
				return nil, err
			}
			oc := c.track(tmgr.Close)
			return trackedManager{TopicManager: tmgr, oc: oc}, nil
		}),
	}
}

// Close closes every consumer and topic manager built through Options that
// goka has not closed itself. Call it after the processor's Run returned
// (or NewProcessor failed).
func (c *Clients) Close() error {
	c.mu.Lock()
	open := c.open
	c.open, c.closed = nil, true
	c.mu.Unlock()
	var errs []error
	for _, oc := range open {
		errs = append(errs, oc.close())
	}
	return errors.Join(errs...)
}

func (c *Clients) track(close func() error) *onceCloser {
	oc := &onceCloser{f: close}
	c.mu.Lock()
	closed := c.closed
	if !closed {
		c.open = append(c.open, oc)
	}
	c.mu.Unlock()
	if closed { // built after Close: nothing would close it
		_ = oc.close()
	}
	return oc
}

// onceCloser closes once: goka's own Close and Clients.Close may both come.
type onceCloser struct {
	once sync.Once
	f    func() error
	err  error
}

func (o *onceCloser) close() error {
	o.once.Do(func() { o.err = o.f() })
	return o.err
}

type trackedConsumer struct {
	sarama.Consumer
	oc *onceCloser
}

func (t trackedConsumer) Close() error { return t.oc.close() }

type trackedManager struct {
	goka.TopicManager
	oc *onceCloser
}

func (t trackedManager) Close() error { return t.oc.close() }
