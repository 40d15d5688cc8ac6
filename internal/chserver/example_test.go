package chserver_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kaudit/kaudit/internal/chclient"
	"github.com/kaudit/kaudit/internal/chserver"
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

	conn, err := chclient.Open(ctx, chclient.Config{Addr: srv.Addr(), Database: "default"})
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
	// Output: 42
}
