package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kaudit/kaudit/internal/chclient"
	"github.com/kaudit/kaudit/internal/cli"
	"github.com/kaudit/kaudit/report"
)

type reportCmd struct {
	cli.ClickHouse `embed:""`

	Since     span   `help:"Report on the messages first seen this long ago until now (whole minutes; e.g. 15m, 1h, 7d)." default:"1h"`
	Topic     string `help:"Only this topic."`
	Group     string `help:"Only this consumer group."`
	NoRefresh bool   `help:"Do not bring the per-minute rollups up to date first (for users who may only read; the numbers may lag)."`
}

func (c *reportCmd) Run() error {
	ctx := context.Background()
	cfg := c.Config()
	conn, err := chclient.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	if !c.NoRefresh {
		r := report.NewRefresher(conn, report.RefresherConfig{Database: cfg.Database})
		if _, err := r.Refresh(ctx); err != nil {
			return fmt.Errorf("%w (--no-refresh reads the rollups as they are)", err)
		}
	}
	since := time.Now().Add(-time.Duration(c.Since)).Truncate(time.Minute)
	rows, err := report.Overview(ctx, conn, cfg.Database, report.Filter{Since: since, Topic: c.Topic, Group: c.Group})
	if err != nil {
		return err
	}
	fmt.Printf("Messages first seen since %s UTC (%s):\n\n", since.UTC().Format(time.DateTime), c.ClickHouse.String())
	return report.FormatOverview(os.Stdout, rows)
}

// span is a duration flag that also takes days: "30d", "1d12h", "90m".
type span time.Duration

func (s *span) UnmarshalText(b []byte) error {
	text := strings.TrimSpace(string(b))
	var days int64
	if i := strings.IndexByte(text, 'd'); i >= 0 {
		n, err := strconv.ParseInt(text[:i], 10, 32)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid duration %q: want e.g. 30d, 12h, 1d12h", text)
		}
		days, text = n, text[i+1:]
	}
	var rest time.Duration
	if text != "" {
		var err error
		if rest, err = time.ParseDuration(text); err != nil {
			return fmt.Errorf("invalid duration %q: want e.g. 30d, 12h, 1d12h", string(b))
		}
	}
	d := time.Duration(days)*24*time.Hour + rest
	if d < 0 {
		return errors.New("duration must not be negative")
	}
	*s = span(d)
	return nil
}

func (s span) String() string { return time.Duration(s).String() }
