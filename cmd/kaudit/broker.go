package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/kaudit/kaudit/internal/cli"
	"github.com/kaudit/kaudit/internal/devbroker"
)

type brokerCmd struct {
	cli.Log `embed:""`

	Addr     string `help:"Listen address." env:"KAUDIT_BROKER_ADDR" default:"127.0.0.1:9092"`
	StateDir string `help:"Folder for the broker's data (kept across runs)." env:"KAUDIT_STATE_DIR" default:".kaudit" type:"path"`
}

func (c *brokerCmd) Run() error {
	log := c.Logger(os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := devbroker.Start(devbroker.Config{Addr: c.Addr, DataDir: filepath.Join(c.StateDir, "kafka"), Logger: log})
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Printf("kaudit dev broker listening on %s (data in %s); Ctrl-C stops it\n", b.Addr(), filepath.Join(c.StateDir, "kafka"))
	<-ctx.Done()
	return nil
}
