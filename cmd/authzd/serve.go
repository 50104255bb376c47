package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/authzd/authzd/service"
)

type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...))
}

func cmdServe(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", os.Getenv("AUTHZD_CONFIG"), "config file (env AUTHZD_CONFIG)")
	listen := fs.String("listen", "", "gRPC listen address (overrides listen)")
	httpListen := fs.String("http-listen", "", `HTTP listen address for metrics, health and forward-auth (overrides http_listen; "off" disables)`)
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "authzd serve: --log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	// go-redis logs dial failures through its own global logger; route them
	// into the structured log at debug level (the breaker already logs and
	// counts outages once).
	redis.SetLogger(redisLogger{log: log.With("component", "redis")})
	if *configPath == "" {
		fmt.Fprintln(stderr, "authzd serve: --config is required (try examples/quickstart/authzd.yaml)")
		return 2
	}
	cfg, err := service.LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "authzd serve: %v\n", err)
		return 2
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *httpListen != "" {
		cfg.HTTPListen = *httpListen
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "authzd serve: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := service.New(ctx, cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "authzd serve: %v\n", err)
		return 2
	}
	if err := srv.Run(ctx); err != nil {
		log.Error("server stopped", "error", err)
		return 1
	}
	log.Info("server stopped")
	return 0
}
