package migrations_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kaudit/kaudit/internal/chserver"
	"github.com/kaudit/kaudit/store"
	"github.com/kaudit/kaudit/store/migrations"
)

func ExampleUp() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := chserver.Start(ctx, chserver.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop()

	cfg := store.Config{Addr: srv.Addr(), Database: "kaudit"}
	for range 2 { // the second run finds nothing to do
		if err := migrations.Up(ctx, cfg, nil); err != nil {
			fmt.Println(err)
			return
		}
	}
	st, err := migrations.Status(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range st {
		fmt.Println(s.Source.Version, s.Source.Path, s.State)
	}
	// (a server-bound example: compiled, not run; the tests check the same)
	// 1 000001_create_events.sql applied
	// 2 000002_create_deliveries.sql applied
	// 3 000003_create_deliveries_1m.sql applied
	// 10 000010_deliveries_expectations.sql applied
}
