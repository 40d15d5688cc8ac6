package main

import (
	"context"
	"fmt"
	"os"

	"github.com/kaudit/kaudit/internal/cli"
	"github.com/kaudit/kaudit/store/migrations"
)

type migrateCmd struct {
	cli.ClickHouse `embed:""`
	cli.Log        `embed:""`
}

func (c *migrateCmd) Run() error {
	cfg := c.Config()
	if err := migrations.Up(context.Background(), cfg, c.Logger(os.Stderr)); err != nil {
		return err
	}
	fmt.Printf("migrations applied to %s\n", c.ClickHouse.String())
	return nil
}
