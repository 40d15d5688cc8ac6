package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kaudit/kaudit/internal/cli"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/web"
)

type webCmd struct {
	cli.ClickHouse `embed:""`
	cli.Log        `embed:""`

	Addr         string        `help:"Listen address of the dashboard." env:"KAUDIT_WEB_ADDR" default:"127.0.0.1:8080"`
	RefreshEvery time.Duration `help:"Bring the per-minute rollups up to date this often (they are also refreshed when a page is loaded)." default:"10s"`
	AutoReload   time.Duration `help:"Reload the overview page in the browser this often (0: never)." default:"15s"`
	Retention    cli.Span      `help:"Drop day partitions older than this, hourly (e.g. 30d; 0 keeps everything)." env:"KAUDIT_RETENTION" default:"0"`
}

func (c *webCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := c.Logger(os.Stderr)
	conn, cfg, err := c.Open(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	ref := store.NewRefresher(conn, store.RefresherConfig{Database: cfg.Database, Cluster: cfg.Cluster, Logger: log})
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
		g.Go(func() error {
			return store.NewRetainer(conn, cfg.Schema(), time.Duration(c.Retention), log).Run(ctx, time.Hour)
		})
	}
	return g.Wait()
}
