package service_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	authzdv1 "github.com/authzd/authzd/gen/authzd/v1"
	"github.com/authzd/authzd/service"
)

// BenchmarkCheck measures the Check flow in-process (no transport): an API
// key, the quickstart RBAC policy, decision cache warm (cached) or disabled
// (uncached).
//
//	go test -run '^$' -bench 'BenchmarkCheck' -benchmem ./service
func BenchmarkCheck(b *testing.B) {
	for _, mode := range []string{"cached", "uncached"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			cfg := baseConfig(b, dir)
			if mode == "uncached" {
				cfg.Cache.DecisionTTL = -1
			}
			key, _ := createKey(b, cfg.Identity.APIKeys.File, "svc-a", []string{"read"}, 0)
			srv, err := service.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			a := srv.Authorizer()
			req := &authzdv1.CheckRequest{
				Credentials: apiKeyCreds(key), Action: "documents:read",
				Resource: &authzdv1.Resource{Type: "document", Id: "42", Attributes: mustStruct(b, map[string]any{"owner": "svc-b", "tags": []any{"a", "b"}})},
				Context:  mustStruct(b, map[string]any{"ip": "10.1.2.3"}),
			}
			resp, err := a.Check(context.Background(), req)
			if err != nil || !resp.Allowed {
				b.Fatalf("%v %v", resp, err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := a.Check(context.Background(), req)
					if err != nil || !resp.Allowed || resp.Cached != (mode == "cached") {
						b.Errorf("%v %v", resp, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkCheckGRPC measures a Check through the generated client over a
// real loopback listener; client and server share the process, so ns/op is
// the CPU of both sides when the machine is saturated.
//
//	go test -run '^$' -bench 'BenchmarkCheckGRPC' -benchmem ./service
func BenchmarkCheckGRPC(b *testing.B) {
	for _, mode := range []string{"cached", "uncached"} {
		b.Run(mode, func(b *testing.B) {
			dir := b.TempDir()
			cfg := baseConfig(b, dir)
			if mode == "uncached" {
				cfg.Cache.DecisionTTL = -1
			}
			key, _ := createKey(b, cfg.Identity.APIKeys.File, "svc-a", []string{"read"}, 0)
			ts := startServer(b, dir, cfg)
			req := &authzdv1.CheckRequest{Credentials: apiKeyCreds(key), Action: "documents:read", Resource: doc("42")}
			b.ReportAllocs()
			b.ResetTimer()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := ts.client.Check(context.Background(), req)
					if err != nil || !resp.Allowed {
						b.Errorf("%v %v", resp, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkBatchCheck measures 10 items for one credential.
func BenchmarkBatchCheck(b *testing.B) {
	dir := b.TempDir()
	cfg := baseConfig(b, dir)
	cfg.Cache.DecisionTTL = -1
	key, _ := createKey(b, cfg.Identity.APIKeys.File, "svc-a", []string{"read"}, 0)
	srv, err := service.New(context.Background(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	req := &authzdv1.BatchCheckRequest{Credentials: apiKeyCreds(key)}
	for i := range 10 {
		req.Items = append(req.Items, &authzdv1.BatchCheckItem{Action: "documents:read", Resource: doc(fmt.Sprint(i))})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := srv.Authorizer().BatchCheck(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	_ = time.Second
}

// BenchmarkCheckSimpleRule is the floor of the flow: a one-comparison
// policy, decision cache disabled, API key credential.
//
//	go test -run '^$' -bench 'BenchmarkCheckSimpleRule' -benchmem ./service
func BenchmarkCheckSimpleRule(b *testing.B) {
	dir := b.TempDir()
	cfg := baseConfig(b, dir)
	cfg.Cache.DecisionTTL = -1
	writeFile(b, cfg.Policy.Paths[0]+"/rbac.rego", "package authzd\nimport rego.v1\ndefault decision := false\ndecision if input.action == \"documents:read\"\n")
	key, _ := createKey(b, cfg.Identity.APIKeys.File, "svc-a", []string{"read"}, 0)
	srv, err := service.New(context.Background(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	a := srv.Authorizer()
	req := &authzdv1.CheckRequest{Credentials: apiKeyCreds(key), Action: "documents:read", Resource: doc("42")}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := a.Check(context.Background(), req)
			if err != nil || !resp.Allowed {
				b.Errorf("%v %v", resp, err)
				return
			}
		}
	})
}
