package service

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	authzdv1 "github.com/authzd/authzd/gen/authzd/v1"
	"github.com/authzd/authzd/identity"
	"github.com/authzd/authzd/rego"
)

// Server is a running authzd: gRPC (authzd.v1, health, reflection) and HTTP
// (metrics, health, readiness) over one Authorizer.
type Server struct {
	cfg       Config
	log       *slog.Logger
	engine    *rego.Engine
	auth      *Authorizer
	providers *providerSet
	metrics   *metrics
	health    *health.Server
	grpc      *grpc.Server
	mux       *http.ServeMux
	tls       *tlsReloader
	envoy     *envoyFlow
}

// New builds a server from a validated config. It loads the policy once; a
// policy that does not compile is logged and the server starts NOT_SERVING
// until a good set appears. Configuration errors are returned.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	engine, err := rego.NewEngine(cfg.Policy, log)
	if err != nil {
		return nil, err
	}
	providers, err := buildProviders(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok { // a later start-up error must not leak provider goroutines
			for _, c := range providers.closers {
				c()
			}
		}
	}()
	s := &Server{
		cfg: cfg, log: log, engine: engine, providers: providers,
		metrics: newMetrics(), health: health.NewServer(), mux: http.NewServeMux(),
	}
	s.metrics.watchEngine(engine)
	if providers.redisKeys != nil {
		registerAPIKeyStoreMetrics(s.metrics.reg, providers.redisKeys)
	}
	s.auth = newAuthorizer(cfg, engine, providers.chain, log, s.metrics)
	if cfg.Cache.Redis.Enabled() {
		rt, err := newRedisTier(cfg.Cache.Redis, s.auth, cfg.Cache.Memory, log, s.metrics)
		if err != nil {
			return nil, err
		}
		defer func() {
			if !ok {
				rt.close()
			}
		}()
	}

	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	s.health.SetServingStatus(authzdv1.AuthorizationService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	s.health.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	engine.OnSwap(func(ps *rego.PolicySet) {
		s.metrics.revision.Reset()
		s.metrics.revision.WithLabelValues(ps.Revision).Set(1)
		s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		s.health.SetServingStatus(authzdv1.AuthorizationService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
		s.health.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	})
	if err := engine.Load(ctx); err != nil {
		log.Error("initial policy load failed; serving NOT_SERVING until a policy compiles", "error", err)
	} else {
		ps := engine.Current()
		log.Info("policy loaded", "revision", ps.Revision, "files", len(ps.Files))
	}

	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.Limits.MaxRequestBytes),
		grpc.ChainUnaryInterceptor(recoverUnary(log)),
	}
	if cfg.TLS.Enabled() {
		s.tls, err = newTLSReloader(cfg.TLS, log)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.tls.Config())))
	}
	s.grpc = grpc.NewServer(opts...)
	authzdv1.RegisterAuthorizationServiceServer(s.grpc, &authorizationServer{a: s.auth})
	authzdv1.RegisterAdminServiceServer(s.grpc, &adminServer{a: s.auth, log: log})
	s.envoy = newEnvoyFlow(s.auth, cfg.Envoy, log)
	authv3.RegisterAuthorizationServer(s.grpc, &envoyAuthServer{f: s.envoy})
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)

	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.envoy.registerHTTP(s.mux)
	ok = true
	return s, nil
}

// Authorizer returns the Check flow, for front doors built on top of it.
func (s *Server) Authorizer() *Authorizer { return s.auth }

// Engine returns the policy engine.
func (s *Server) Engine() *rego.Engine { return s.engine }

// GRPC returns the gRPC server, for registering more services before Serve.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Mux returns the HTTP mux, for adding routes before Serve.
func (s *Server) Mux() *http.ServeMux { return s.mux }

// readiness reports whether the server can decide, with every problem.
func (s *Server) readiness() (bool, map[string]string) {
	out := map[string]string{}
	ready := true
	if ps := s.engine.Current(); ps == nil {
		ready = false
		msg := "no policy loaded"
		if err := s.engine.LastError(); err != nil {
			msg += ": " + err.Error()
		}
		out["policy"] = msg
	} else {
		out["policy"] = "ok revision " + ps.Revision
		if ps.BundleRevision != "" {
			out["policy"] += " (bundle revision " + ps.BundleRevision + ")"
		}
		if err := s.engine.LastError(); err != nil {
			out["policy"] += " (last reload failed: " + err.Error() + ")"
		}
	}
	for _, p := range s.providers.chain.Providers() {
		if rr, ok := p.(identity.ReadinessReporter); ok {
			if err := rr.Ready(); err != nil {
				out["identity/"+p.Name()] = "unavailable: " + err.Error()
				continue
			}
		}
		out["identity/"+p.Name()] = "ok"
	}
	if s.auth.redis != nil {
		// Listed, never failing readiness: checks are answered without it.
		out["cache/redis"] = s.auth.redis.status()
	}
	return ready, out
}

// readyz is 200 once a policy is loaded. Identity providers that cannot
// reach their issuer are listed but do not fail readiness: credentials of
// other providers still work, and those of the failing one are denied.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	ready, detail := s.readiness()
	w.Header().Set("Content-Type", "application/json")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(map[string]any{"ready": ready, "checks": detail})
}

// Run listens on the configured addresses and serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	gl, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	var hl net.Listener
	if s.cfg.HTTPListen != "off" {
		hl, err = net.Listen("tcp", s.cfg.HTTPListen)
		if err != nil {
			gl.Close()
			return fmt.Errorf("http_listen: %w", err)
		}
	}
	return s.Serve(ctx, gl, hl)
}

// Serve serves on the given listeners (hl may be nil) until ctx ends, then
// stops accepting, lets in-flight checks finish (up to ShutdownTimeout), and
// returns.
func (s *Server) Serve(ctx context.Context, gl, hl net.Listener) error {
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	var wg sync.WaitGroup
	goRun := func(fn func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); fn(bg) }()
	}
	goRun(s.engine.Run)
	for _, r := range s.providers.runners {
		goRun(r)
	}
	if s.tls != nil {
		goRun(s.tls.run)
	}
	if s.auth.redis != nil {
		goRun(s.auth.redis.run)
	}

	errc := make(chan error, 2)
	go func() { errc <- s.grpc.Serve(gl) }()
	var hs *http.Server
	if hl != nil {
		hs = &http.Server{Handler: s.mux, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 64 << 10}
		if s.tls != nil {
			hs.TLSConfig = s.tls.Config()
			hl = tls.NewListener(hl, hs.TLSConfig)
		}
		go func() { errc <- hs.Serve(hl) }()
	}
	s.log.Info("authzd serving", "grpc", gl.Addr().String(), "http", addrOf(hl), "tls", s.tls != nil)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.health.Shutdown() // NOT_SERVING: load balancers stop sending
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	timer := time.NewTimer(s.cfg.ShutdownTimeout)
	select {
	case <-done:
	case <-timer.C:
		s.log.Warn("shutdown timeout reached; closing remaining connections")
		s.grpc.Stop()
	}
	timer.Stop()
	if hs != nil {
		sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
		_ = hs.Shutdown(sctx)
		cancel()
	}
	stopBG()
	wg.Wait()
	for _, c := range s.providers.closers {
		c()
	}
	if s.auth.redis != nil {
		s.auth.redis.close()
	}
	if serveErr != nil && !errors.Is(serveErr, grpc.ErrServerStopped) && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return nil
}

func addrOf(l net.Listener) string {
	if l == nil {
		return "off"
	}
	return l.Addr().String()
}
