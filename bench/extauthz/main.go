// Command extauthz is a load tool for the Envoy ext_authz service. In one
// run it starts, on loopback only, authzd (with a header-rule policy, the
// case the OPA-Envoy plugin is usually compared on) and a trivial ext_authz
// server that always allows, then drives each with the same CheckRequests
// Envoy sends, from concurrent go-control-plane clients. The trivial server
// is the ceiling: what gRPC and the client cost without any decision.
//
// Each target gets -n requests or -d of time, whichever ends first.
// Reported per target: throughput, latency percentiles, and the process
// CPU time per request (client and server share the process, so the
// difference to the trivial server is authzd's own cost).
//
//	go run ./bench/extauthz -c 16 -n 200000 -d 10s
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/authzd/authzd/rego"
	"github.com/authzd/authzd/service"
)

const headerRule = `package envoy.authz

import input.attributes.request.http

default allow := false

allow if http.headers["x-user"] == "alice"
`

// allowAll is the ceiling: an ext_authz server that decides nothing.
type allowAll struct {
	authv3.UnimplementedAuthorizationServer
}

func (allowAll) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.OK)}}, nil
}

func main() {
	conc := flag.Int("c", 16, "concurrent clients")
	total := flag.Int("n", 200000, "requests per target (upper bound)")
	dur := flag.Duration("d", 10*time.Second, "time per target (upper bound)")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	rounds := flag.Int("rounds", 3, "interleaved rounds over the targets")
	flag.Parse()
	if *conc < 1 || *total < 1 || *dur <= 0 || *rounds < 1 {
		log.Fatal("-c, -n, -d and -rounds must be positive")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	dir, err := os.MkdirTemp("", "extauthz-bench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(headerRule), 0o644); err != nil {
		log.Fatal(err)
	}

	fmt.Printf("ext_authz load: %d clients, up to %d requests or %v per target in %d interleaved rounds, loopback, GOMAXPROCS=%d\n\n",
		*conc, *total, *dur, *rounds, runtimeProcs())

	type target struct {
		name string
		addr string
		res  []result
	}
	var targets []*target

	// The ceiling.
	gl := listen()
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, allowAll{})
	go gs.Serve(gl)
	defer gs.Stop()
	targets = append(targets, &target{name: "trivial allow-all server", addr: gl.Addr().String()})

	for _, mode := range []struct {
		name string
		ttl  time.Duration
	}{
		{"authzd, decision cache off", -1},
		{"authzd, decision cache on", 0},
	} {
		cfg := service.Config{
			Listen: "127.0.0.1:0", HTTPListen: "off",
			Policy: rego.Config{Paths: []string{dir}, ReloadInterval: -1},
			Cache:  service.CacheConfig{DecisionTTL: mode.ttl},
		}
		srv, err := service.New(ctx, cfg, nil)
		if err != nil {
			log.Fatal(err)
		}
		l := listen()
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, l, nil) }()
		defer func() { <-done }()
		targets = append(targets, &target{name: mode.name, addr: l.Addr().String()})
	}

	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	// Rounds alternate the targets, so a neighbour's load on a shared
	// machine falls on all of them alike.
	for range *rounds {
		for _, t := range targets {
			t.res = append(t.res, load(ctx, t.addr, *conc, *total / *rounds, *dur/time.Duration(*rounds)))
		}
	}
	fmt.Printf("%-30s %9s %9s %10s %10s %10s %10s\n", "target", "requests", "req/s", "p50", "p99", "p99.9", "CPU/req")
	for _, t := range targets {
		r := merge(t.res)
		fmt.Printf("%-30s %9d %9.0f %10s %10s %10s %10s\n", t.name, r.n, r.rps, us(r.p50), us(r.p99), us(r.p999), us(r.cpu))
	}
	cancel()
}

func listen() net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	return l
}

type result struct {
	lat     []time.Duration // sorted
	elapsed time.Duration
	cpu     time.Duration
}

type summary struct {
	n                   int
	rps                 float64
	p50, p99, p999, cpu time.Duration
}

func merge(rs []result) summary {
	var all []time.Duration
	var elapsed, cpu time.Duration
	for _, r := range rs {
		all = append(all, r.lat...)
		elapsed += r.elapsed
		cpu += r.cpu
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration { return all[min(len(all)-1, int(p*float64(len(all))))] }
	return summary{
		n: len(all), rps: float64(len(all)) / elapsed.Seconds(),
		p50: pct(0.50), p99: pct(0.99), p999: pct(0.999), cpu: cpu / time.Duration(len(all)),
	}
}

// request is what Envoy sends for a GET with typical headers; the request
// id and time change on every request, as they do in production.
func request(i int64) *authv3.CheckRequest {
	addr := func(ip string, port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
	}
	id := strconv.FormatInt(i, 10)
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: addr("10.0.0.7", 50312)},
		Destination: &authv3.AttributeContext_Peer{Address: addr("10.0.0.9", 8000)},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.Now(),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: id, Method: "GET", Path: "/api/v1/orders/42?expand=items", Host: "shop.example.com",
				Scheme: "https", Protocol: "HTTP/1.1",
				Headers: map[string]string{
					":authority": "shop.example.com", ":method": "GET", ":path": "/api/v1/orders/42?expand=items",
					":scheme": "https", "accept": "application/json", "user-agent": "curl/8.5.0",
					"x-forwarded-proto": "https", "x-request-id": "req-" + id, "x-user": "alice",
					"x-envoy-expected-rq-timeout-ms": "15000",
				},
			},
		},
		MetadataContext: &corev3.Metadata{},
	}}
}

func load(ctx context.Context, addr string, conc, total int, dur time.Duration) result {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	// Warm up: connection, caches, JIT-free but allocator-warm.
	for i := range 200 {
		if _, err := client.Check(ctx, request(int64(-i))); err != nil {
			log.Fatalf("%s: %v", addr, err)
		}
	}

	var next atomic.Int64
	deadline := time.Now().Add(dur)
	lat := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	cpu0 := cpuTime()
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, total/conc+1)
			for {
				i := next.Add(1)
				if i > int64(total) || time.Now().After(deadline) {
					break
				}
				req := request(i)
				t0 := time.Now()
				resp, err := client.Check(ctx, req)
				d := time.Since(t0)
				if err != nil || resp.GetStatus().GetCode() != int32(codes.OK) {
					log.Fatalf("%s: request %d: %v %v", addr, i, resp, err)
				}
				mine = append(mine, d)
			}
			lat[w] = mine
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	return result{lat: slices.Concat(lat...), elapsed: elapsed, cpu: cpu}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func us(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Microsecond), 'f', 1, 64) + "µs"
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
