package service_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	authzdv1 "github.com/authzd/authzd/gen/authzd/v1"
	"github.com/authzd/authzd/internal/testpki"
	"github.com/authzd/authzd/service"
)

// rawMessage lets a test send arbitrary bytes as a gRPC request.
type rawMessage []byte

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.(rawMessage), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*(v.(*rawMessage)) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

func forceRawCodec() grpc.CallOption { return grpc.ForceCodec(rawCodec{}) }

func httpGet(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestHealthFollowsPolicy(t *testing.T) {
	dir := t.TempDir()
	cfg := baseConfig(t, dir)
	// Start with a policy that does not compile.
	bad := filepath.Join(cfg.Policy.Paths[0], "zz_broken.rego")
	writeFile(t, bad, "package authzd\n\nthis is not rego\n")
	ts := startServer(t, dir, cfg)
	ctx := context.Background()
	hc := healthpb.NewHealthClient(ts.conn)

	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health before a policy compiles = %v, %v; want NOT_SERVING", resp, err)
	}
	_, err = ts.client.Check(ctx, &authzdv1.CheckRequest{Action: "documents:read"})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Check with no policy = %v, want UNAVAILABLE", err)
	}
	if r, _ := http.Get("http://" + ts.httpAddr + "/readyz"); r == nil || r.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz before policy: %v", r)
	} else {
		r.Body.Close()
	}

	os.Remove(bad)
	eventually(t, "SERVING after the policy compiles", func() bool {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "authzd.v1.AuthorizationService"})
		return err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING
	})
	if r, err := http.Get("http://" + ts.httpAddr + "/readyz"); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("readyz after policy: %v %v", r, err)
	} else {
		r.Body.Close()
	}
	if body := httpGet(t, "http://"+ts.httpAddr+"/metrics"); !strings.Contains(body, "authzd_policy_revision_info") {
		t.Error("metrics must expose the policy revision")
	}
}

func TestReflectionListsServices(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, dir, baseConfig(t, dir))
	stream, err := reflectionpb.NewServerReflectionClient(ts.conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	for _, want := range []string{"authzd.v1.AuthorizationService", "authzd.v1.AdminService", "grpc.health.v1.Health"} {
		if !strings.Contains(strings.Join(names, ","), want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	pki := testpki.New(t)
	cfg := baseConfig(t, dir)
	cfg.TLS = service.TLSConfig{CertFile: pki.ServerCert, KeyFile: pki.ServerKey, ClientCAFile: pki.CAFile}
	ts := startServer(t, dir, cfg)

	caPEM, _ := os.ReadFile(pki.CAFile)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	clientCert, err := tls.LoadX509KeyPair(pki.ClientCert, pki.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	call := func(tc *tls.Config) error {
		conn, err := grpc.NewClient(ts.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = authzdv1.NewAuthorizationServiceClient(conn).Check(ctx, &authzdv1.CheckRequest{Action: "documents:read"})
		return err
	}
	if err := call(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientCert}}); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	if err := call(&tls.Config{RootCAs: roots}); err == nil {
		t.Fatal("without a client certificate the handshake must fail")
	}
	// Plaintext is refused on a TLS listener.
	conn, _ := grpc.NewClient(ts.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := authzdv1.NewAuthorizationServiceClient(conn).Check(ctx, &authzdv1.CheckRequest{Action: "x"}); err == nil {
		t.Fatal("plaintext must fail against TLS")
	}
}

func TestTLSCertificateReload(t *testing.T) {
	dir := t.TempDir()
	first, second := testpki.New(t), testpki.New(t)
	certFile, keyFile := filepath.Join(dir, "tls.pem"), filepath.Join(dir, "tls-key.pem")
	copyFile := func(src, dst string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dst, string(b))
	}
	copyFile(first.ServerCert, certFile)
	copyFile(first.ServerKey, keyFile)
	cfg := baseConfig(t, dir)
	cfg.TLS = service.TLSConfig{CertFile: certFile, KeyFile: keyFile, ReloadInterval: 20 * time.Millisecond}
	ts := startServer(t, dir, cfg)

	callTrusting := func(caFile string) error {
		caPEM, _ := os.ReadFile(caFile)
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(caPEM)
		conn, err := grpc.NewClient(ts.grpcAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots})))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	if err := callTrusting(first.CAFile); err != nil {
		t.Fatalf("first certificate: %v", err)
	}
	if err := callTrusting(second.CAFile); err == nil {
		t.Fatal("a client trusting only the second CA must fail before rotation")
	}
	copyFile(second.ServerKey, keyFile)
	copyFile(second.ServerCert, certFile)
	eventually(t, "rotated certificate served", func() bool { return callTrusting(second.CAFile) == nil })
}
