package sinks_test

import (
	"context"
	"log/slog"
	"os"

	"github.com/kaudit/kaudit/audit"
	"github.com/kaudit/kaudit/sinks"
)

// A runner writing verdicts as JSON lines: what `kaudit-sink --sink log`
// runs. (Compiled, not run: it needs a broker.)
func ExampleNew() {
	r, err := sinks.New(sinks.Config[*sinks.Batch]{
		Brokers:  []string{"127.0.0.1:9092"},
		Group:    "kaudit-sink-log",
		Topics:   sinks.AuditTopics(audit.DefaultVerdictsTopic, ""),
		NewBatch: sinks.NewBatch,
		DLQTopic: audit.DefaultDLQTopic,
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}, sinks.NewLogSink(os.Stdout, false))
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = r.Run(ctx) }() // until ctx is cancelled
}
