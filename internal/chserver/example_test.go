package chserver_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kaudit/kaudit/internal/chserver"
	"github.com/kaudit/kaudit/store"
)

func ExampleStart() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := chserver.Start(ctx, chserver.Options{}) // temporary directory, free ports
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Stop()

	conn, err := store.Open(ctx, store.Config{Addr: srv.Addr(), Database: "default"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	var answer uint16
	if err := conn.QueryRow(ctx, "SELECT 6 * 7").Scan(&answer); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(answer)
	// Prints: 42 (a server-bound example: compiled, not run; the tests check the same)
}
