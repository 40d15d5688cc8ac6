package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	MetricsAddr string `help:"Serve Prometheus metrics on this address (/metrics); empty disables." env:"KAUDIT_METRICS_ADDR"`
}

// Serve serves reg's metrics on /metrics until ctx ends; it returns at once
// if metrics are disabled.
func (m *Metrics) Serve(ctx context.Context, reg *prometheus.Registry) error {
	if m.MetricsAddr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Addr: m.MetricsAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}
