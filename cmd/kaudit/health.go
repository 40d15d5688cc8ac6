package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// healthCmd probes a kaudit process's health endpoint: the docker-compose
// healthchecks run it, since the distroless image has no curl or wget.
type healthCmd struct {
	URL     string        `arg:"" help:"Endpoint to probe, e.g. http://127.0.0.1:9100/readyz." default:"http://127.0.0.1:9100/readyz"`
	Timeout time.Duration `help:"Give up after this long." default:"5s"`
}

func (c *healthCmd) Run() error {
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("health: %s: %s: %s", c.URL, resp.Status, msg)
	}
	fmt.Println(msg)
	return nil
}
