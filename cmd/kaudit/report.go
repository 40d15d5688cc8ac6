package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/kaudit/kaudit/internal/cli"
	"github.com/kaudit/kaudit/report"
	"github.com/kaudit/kaudit/store"
)

type reportCmd struct {
	cli.ClickHouse `embed:""`

	Since     cli.Span `help:"Report on the messages first seen this long ago until now (whole minutes; e.g. 15m, 1h, 7d)." default:"1h"`
	Topic     string   `help:"Only this topic."`
	Group     string   `help:"Only this consumer group."`
	NoRefresh bool     `help:"Do not bring the per-minute rollups up to date first (for users who may only read; the numbers may lag)."`
	Clients   bool     `xor:"view" help:"Print kaudit-proxy's client traffic instead: who produces to and consumes from each topic."`
	Admin     bool     `xor:"view" help:"Print kaudit-proxy's admin audit instead: who did what, allowed or denied."`
	Lag       bool     `xor:"view" help:"Print the consumer lag instead: per topic, expected group and minute, the age of the oldest message the group had not consumed and how many were pending (the correlators' reports)."`
	Principal string   `help:"With --clients or --admin: only this principal (e.g. User:alice)."`
	Denied    bool     `help:"With --admin: only denied operations."`
}

func (c *reportCmd) Run() error {
	ctx := context.Background()
	conn, cfg, err := c.Open(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	since := time.Now().Add(-time.Duration(c.Since)).Truncate(time.Minute)
	switch {
	case c.Lag:
		rows, err := report.Lag(ctx, conn, cfg.Database, report.Filter{Since: since, Topic: c.Topic, Group: c.Group})
		if err != nil {
			return err
		}
		fmt.Printf("Consumer lag per minute since %s UTC (%s):\n\n", since.UTC().Format(time.DateTime), c.ClickHouse.String())
		return report.FormatLag(os.Stdout, rows)
	case c.Clients:
		rows, err := report.ClientFlows(ctx, conn, cfg.Database, report.ClientFilter{Since: since, Topic: c.Topic, Principal: c.Principal})
		if err != nil {
			return err
		}
		fmt.Printf("Client traffic through kaudit-proxy since %s UTC (%s):\n\n", since.UTC().Format(time.DateTime), c.ClickHouse.String())
		return report.FormatClientFlows(os.Stdout, rows)
	case c.Admin:
		rows, err := report.AdminAudit(ctx, conn, cfg.Database, report.AuditFilter{Since: since, Principal: c.Principal, Resource: c.Topic, Denied: c.Denied})
		if err != nil {
			return err
		}
		fmt.Printf("Admin operations audited by kaudit-proxy since %s UTC (%s), newest first:\n\n", since.UTC().Format(time.DateTime), c.ClickHouse.String())
		return report.FormatAdminAudit(os.Stdout, rows)
	}
	if !c.NoRefresh {
		r := store.NewRefresher(conn, store.RefresherConfig{Database: cfg.Database, Cluster: cfg.Cluster})
		if _, err := r.Refresh(ctx); err != nil {
			return fmt.Errorf("%w (--no-refresh reads the rollups as they are)", err)
		}
	}
	rows, err := report.Overview(ctx, conn, cfg.Database, report.Filter{Since: since, Topic: c.Topic, Group: c.Group})
	if err != nil {
		return err
	}
	fmt.Printf("Messages first seen since %s UTC (%s):\n\n", since.UTC().Format(time.DateTime), c.ClickHouse.String())
	return report.FormatOverview(os.Stdout, rows)
}
