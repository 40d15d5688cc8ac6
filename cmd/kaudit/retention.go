package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kaudit/kaudit/internal/cli"
	"github.com/kaudit/kaudit/store"
)

type retentionCmd struct {
	cli.ClickHouse `embed:""`

	Keep   cli.Span `help:"Keep this much history (required; e.g. 30d): whole day partitions older than that are dropped." placeholder:"SPAN"`
	DryRun bool     `help:"Only list the partitions that would be dropped."`
}

func (c *retentionCmd) Run() error {
	if c.Keep <= 0 {
		return errors.New("--keep is required and must be positive (e.g. --keep 30d)")
	}
	ctx := context.Background()
	conn, cfg, err := c.Open(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	cutoff := time.Now().Add(-time.Duration(c.Keep))
	parts, err := store.DropBefore(ctx, conn, cfg.Schema(), cutoff, c.DryRun)
	verb := "dropped"
	if c.DryRun {
		verb = "would drop"
	}
	for _, p := range parts {
		fmt.Printf("%s %s.%s partition %s (%d rows)\n", verb, cfg.Database, p.Table, p.ID, p.Rows)
	}
	if err != nil {
		return err
	}
	fmt.Printf("%s %d partitions older than %s UTC\n", verb, len(parts), cutoff.UTC().Format(time.DateTime))
	return nil
}
