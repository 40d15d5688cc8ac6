package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/kaudit/kaudit/internal/cli"
	"github.com/kaudit/kaudit/report"
)

type trailCmd struct {
	cli.ClickHouse `embed:""`

	CorrelationID string `arg:"" help:"The message's correlation ID (its correlation_id header)."`
}

func (c *trailCmd) Run() error {
	ctx := context.Background()
	conn, cfg, err := c.Open(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	t, err := report.Trail(ctx, conn, cfg.Database, c.CorrelationID)
	if errors.Is(err, report.ErrNotFound) {
		return fmt.Errorf("no trail for correlation ID %q in %s", c.CorrelationID, c.ClickHouse.String())
	}
	if err != nil {
		return err
	}
	report.FormatTrail(os.Stdout, t)
	return nil
}
