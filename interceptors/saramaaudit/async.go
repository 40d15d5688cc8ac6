package saramaaudit

import (
	"errors"
	"fmt"
	"sync"

	"github.com/IBM/sarama"

	"github.com/kaudit/kaudit/audit"
)

// AsyncProducer is an audited sarama.AsyncProducer. It behaves like the
// producer it wraps, with two differences: every message gets a
// correlation_id header (unless it has a non-empty one, which is kept), and
// one produce event is emitted per message when sarama returns it
// (acknowledged or failed), just before the message is handed to the
// application's Successes or Errors channel, unchanged (its Metadata too).
//
// To see every result, the wrapped producer always runs with
// Producer.Return.Successes and Producer.Return.Errors on; the wrapper
// forwards only what the application's configuration asked for, so the
// application reads exactly the channels it would read without auditing.
type AsyncProducer struct {
	sarama.AsyncProducer // Input, AsyncClose and the transaction methods

	pa         *producerAudit
	successes  chan *sarama.ProducerMessage
	errors     chan *sarama.ProducerError
	wantSucc   bool
	wantErrors bool
	done       <-chan struct{} // closed when both result channels are drained
}

var _ sarama.AsyncProducer = (*AsyncProducer)(nil)

// NewAsyncProducer builds an audited async producer for the brokers addrs
// with a copy of cfg (nil: sarama.NewConfig()), which it does not modify.
// The copy gets the audit interceptor appended to Producer.Interceptors
// (after the application's own, so it sees their headers) and both Return
// flags on. Events name cfg.ClientID unless WithClientID says otherwise.
// Headers need Kafka 0.11: cfg.Version must be at least V0_11_0_0.
func NewAsyncProducer(em audit.Emitter, addrs []string, cfg *sarama.Config, opts ...Opt) (*AsyncProducer, error) {
	c, pa, want, err := producerConfig(em, cfg, opts)
	if err != nil {
		return nil, err
	}
	inner, err := sarama.NewAsyncProducer(addrs, c)
	if err != nil {
		return nil, fmt.Errorf("saramaaudit: new async producer: %w", err)
	}
	return wrapAsync(inner, pa, want, c.ChannelBufferSize), nil
}

// returns is what the application's configuration asked sarama to return.
type returns struct{ successes, errors bool }

// producerConfig returns the audited copy of cfg, the audit state and what
// the application wanted returned.
func producerConfig(em audit.Emitter, cfg *sarama.Config, opts []Opt) (*sarama.Config, *producerAudit, returns, error) {
	var c sarama.Config
	if cfg != nil {
		c = *cfg
	} else {
		c = *sarama.NewConfig()
	}
	want := returns{successes: c.Producer.Return.Successes, errors: c.Producer.Return.Errors}
	if !c.Version.IsAtLeast(sarama.V0_11_0_0) {
		return nil, nil, want, fmt.Errorf("saramaaudit: sarama Version %s cannot produce headers; need at least %s", c.Version, sarama.V0_11_0_0)
	}
	pa := &producerAudit{newAuditor(em, newOptions(em, c.ClientID, opts))}
	ics := make([]sarama.ProducerInterceptor, 0, len(c.Producer.Interceptors)+1)
	c.Producer.Interceptors = append(append(ics, c.Producer.Interceptors...), pa)
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	return &c, pa, want, nil
}

func wrapAsync(inner sarama.AsyncProducer, pa *producerAudit, want returns, buffer int) *AsyncProducer {
	p := &AsyncProducer{
		AsyncProducer: inner,
		pa:            pa,
		successes:     make(chan *sarama.ProducerMessage, buffer),
		errors:        make(chan *sarama.ProducerError, buffer),
		wantSucc:      want.successes,
		wantErrors:    want.errors,
	}
	p.done = runResults(inner, pa,
		func(m *sarama.ProducerMessage) {
			if p.wantSucc {
				p.successes <- m
			}
		},
		func(e *sarama.ProducerError) {
			if p.wantErrors {
				p.errors <- e
			}
		},
		func() { close(p.successes) },
		func() { close(p.errors) },
	)
	return p
}

// runResults reads the wrapped producer's Successes and Errors on one
// goroutine each (as sarama's own readers do: a slow reader of one channel
// never holds up the other), audits each result, then hands it to
// onSuccess or onError. When a channel closes, its closer runs. The
// returned channel is closed once both are done.
func runResults(inner sarama.AsyncProducer, pa *producerAudit,
	onSuccess func(*sarama.ProducerMessage), onError func(*sarama.ProducerError),
	closeSuccesses, closeErrors func(),
) <-chan struct{} {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer closeSuccesses()
		for m := range inner.Successes() {
			pa.acked(m, nil)
			onSuccess(m)
		}
	}()
	go func() {
		defer wg.Done()
		defer closeErrors()
		for e := range inner.Errors() {
			if e == nil {
				continue
			}
			err := error(e)
			if e.Err == nil {
				err = errors.New("unknown produce error")
			}
			pa.acked(e.Msg, err)
			onError(e)
		}
	}()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}

// Successes returns the acknowledged messages if the application's
// configuration had Producer.Return.Successes on; otherwise a channel that
// only closes.
func (p *AsyncProducer) Successes() <-chan *sarama.ProducerMessage { return p.successes }

// Errors returns the failed messages if the application's configuration
// had Producer.Return.Errors on (sarama's default); otherwise a channel that
// only closes.
func (p *AsyncProducer) Errors() <-chan *sarama.ProducerError { return p.errors }

// Close shuts the producer down as sarama's Close does: it waits for the
// messages in flight, drains Successes and returns the errors left on
// Errors. Their audit events are emitted before Close returns.
func (p *AsyncProducer) Close() error {
	p.AsyncClose()
	if p.wantSucc {
		go func() {
			for range p.successes {
			}
		}()
	}
	var errs sarama.ProducerErrors
	if p.wantErrors {
		for e := range p.errors {
			errs = append(errs, e)
		}
	}
	<-p.done
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// Stats returns the producer's audit counters.
func (p *AsyncProducer) Stats() Stats { return p.pa.stats() }
