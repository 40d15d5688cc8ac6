package proxy

import (
	"context"
	"sync"
	"sync/atomic"
)

// queue hands items to one consumer goroutine without ever blocking the
// producer: when it is full, the item is dropped and counted.
type queue[T any] struct {
	name    string
	ch      chan T
	dropped atomic.Uint64
	handled atomic.Uint64
	done    chan struct{}
	close   sync.Once
}

func newQueue[T any](name string, size int, handle func(T)) *queue[T] {
	q := &queue[T]{name: name, ch: make(chan T, size), done: make(chan struct{})}
	go func() {
		defer close(q.done)
		for it := range q.ch {
			handle(it)
			q.handled.Add(1)
		}
	}()
	return q
}

// offer queues it, or drops it if the queue is full.
func (q *queue[T]) offer(it T) {
	select {
	case q.ch <- it:
	default:
		q.dropped.Add(1)
	}
}

// stop lets the consumer drain what is queued and waits for it (or ctx).
// No offer may follow.
func (q *queue[T]) stop(ctx context.Context) error {
	q.close.Do(func() { close(q.ch) })
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type observation struct {
	req  *RequestInfo
	resp *ResponseInfo
}
