package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"golang.org/x/sync/errgroup"

	"github.com/kaudit/kaudit/internal/chclient"
	"github.com/kaudit/kaudit/internal/cli"
	"github.com/kaudit/kaudit/report"
	"github.com/kaudit/kaudit/web"
)

type webCmd struct {
	cli.ClickHouse `embed:""`
	cli.Log        `embed:""`

	Addr         string        `help:"Listen address of the dashboard." env:"KAUDIT_WEB_ADDR" default:"127.0.0.1:8080"`
	RefreshEvery time.Duration `help:"Bring the per-minute rollups up to date this often (they are also refreshed when a page is loaded)." default:"10s"`
	AutoReload   time.Duration `help:"Reload the overview page in the browser this often (0: never)." default:"15s"`
	Retention    span          `help:"Drop day partitions older than this, hourly (e.g. 30d; 0 keeps everything)." env:"KAUDIT_RETENTION" default:"0"`
}

func (c *webCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := c.Logger(os.Stderr)
	cfg := c.Config()
	conn, err := chclient.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	ref := report.NewRefresher(conn, report.RefresherConfig{Database: cfg.Database, Logger: log})
	srv, err := web.New(conn, web.Config{
		Database:   cfg.Database,
		Refresher:  ref,
		AutoReload: c.AutoReload,
		Logger:     log,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("web: listen on %s: %w", c.Addr, err)
	}
	fmt.Printf("kaudit dashboard on http://%s/ (ClickHouse %s)\n", ln.Addr(), c.ClickHouse.String())

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(ctx, ln) })
	if c.RefreshEvery > 0 {
		g.Go(func() error { return ref.Run(ctx, c.RefreshEvery) })
	}
	if c.Retention > 0 {
		g.Go(func() error { return retain(ctx, conn, cfg, time.Duration(c.Retention), log) })
	}
	return g.Wait()
}

// retain drops old partitions now and then every hour until ctx ends.
func retain(ctx context.Context, conn driver.Conn, cfg chclient.Config, keep time.Duration, log *slog.Logger) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		parts, err := report.DropBefore(ctx, conn, cfg.Database, time.Now().Add(-keep), false)
		for _, p := range parts {
			log.Info("retention dropped partition", "table", p.Table, "partition", p.ID, "rows", p.Rows)
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("retention failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
