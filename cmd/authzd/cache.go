package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	authzdv1 "github.com/authzd/authzd/gen/authzd/v1"
)

func cmdCache(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "flush" {
		fmt.Fprintln(stderr, "authzd cache: want a subcommand: flush")
		return 2
	}
	fs := flag.NewFlagSet("cache flush", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	principal := fs.String("principal", "", "flush only this principal id")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	conn, err := cf.dial()
	if err != nil {
		fmt.Fprintf(stderr, "authzd cache flush: %v\n", err)
		return 2
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := authzdv1.NewAdminServiceClient(conn).FlushCache(ctx, &authzdv1.FlushCacheRequest{PrincipalId: *principal}); err != nil {
		fmt.Fprintf(stderr, "authzd cache flush: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, "flushed")
	return 0
}
