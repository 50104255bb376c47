package redistest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RequireEnv turns a missing redis-server into a test failure when set to 1.
const RequireEnv = "AUTHZD_REQUIRE_REDIS"

// Binary returns the path of redis-server, or skips t (fails it when
// AUTHZD_REQUIRE_REDIS=1).
func Binary(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	msg := "redis-server not found in PATH: Redis tests need a local redis-server 7.0 or newer (Debian/Ubuntu: apt-get install redis-server)"
	if err == nil {
		major, version := serverVersion(path)
		if major >= 7 {
			return path
		}
		msg = fmt.Sprintf("%s is Redis %s: the tests (and authzd) need 7.0 or newer", path, version)
	}
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s; %s=1 makes this a failure", msg, RequireEnv)
	}
	t.Skipf("%s; skipping (set %s=1 to fail instead)", msg, RequireEnv)
	return ""
}

// Server is one redis-server process owned by a test.
type Server struct {
	// Addr is host:port of the server.
	Addr string
	// TLSAddr is host:port of the TLS listener, when started WithTLS.
	TLSAddr string

	t    testing.TB
	bin  string
	dir  string
	conf string

	extra   []string
	busPort int
	args    []string // extra command-line arguments (--sentinel)

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Option adds lines to the server's configuration file.
type Option func(*[]string)

// WithConfig adds configuration lines, e.g. "requirepass secret".
func WithConfig(lines ...string) Option {
	return func(c *[]string) { *c = append(*c, lines...) }
}

// tlsPortLine marks where Start puts the TLS port.
const tlsPortLine = "tls-port ${TLS_PORT}"

// WithTLS adds a TLS listener (Server.TLSAddr) with the server certificate
// and key, requiring client certificates signed by caFile. The plaintext
// port stays open for the harness's readiness check.
func WithTLS(certFile, keyFile, caFile string) Option {
	return WithConfig(tlsPortLine,
		"tls-cert-file "+certFile, "tls-key-file "+keyFile, "tls-ca-cert-file "+caFile, "tls-auth-clients yes")
}

// Start starts a redis-server on a free loopback port in t.TempDir() and
// stops it when t ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	bin := Binary(t)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: free port: %v", err)
		}
		s, err := start(t, bin, port, nil, opts)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

func start(t testing.TB, bin string, port int, extra []string, opts []Option, args ...string) (*Server, error) {
	dir := t.TempDir()
	lines := []string{
		"bind 127.0.0.1",
		"port " + strconv.Itoa(port),
		"dir " + dir,
		`save ""`,
		"appendonly no",
		"protected-mode no",
		"daemonize no",
		"logfile " + filepath.Join(dir, "redis.log"),
	}
	lines = append(lines, extra...)
	for _, o := range opts {
		o(&lines)
	}
	tlsAddr := ""
	for i, l := range lines {
		if l == tlsPortLine {
			p, err := freePort()
			if err != nil {
				return nil, err
			}
			lines[i] = "tls-port " + strconv.Itoa(p)
			tlsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		}
	}
	conf := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), t: t, bin: bin, dir: dir, conf: conf, extra: extra, TLSAddr: tlsAddr, args: args}
	if err := s.launch(); err != nil {
		return nil, err
	}
	t.Cleanup(s.Kill)
	return s, nil
}

func (s *Server) launch() error {
	cmd := exec.Command(s.bin, append([]string{s.conf}, s.args...)...)
	cmd.Dir = s.dir
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()

	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			return fmt.Errorf("redis-server on %s exited: %v\n%s", s.Addr, err, tail(log))
		default:
		}
		if ping(s.Addr) == nil {
			// Keep the waiter: Kill reaps through it.
			go func() { <-exited }()
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return fmt.Errorf("redis-server on %s did not answer PING within 10s", s.Addr)
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// ping sends an inline PING over a raw connection (no client library, so
// nothing logs while the server is still starting).
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	reply := string(buf[:n])
	if strings.HasPrefix(reply, "+PONG") || strings.Contains(reply, "NOAUTH") {
		return nil // up (and maybe asking for a password)
	}
	return fmt.Errorf("unexpected PING reply %q", reply)
}

// Kill stops the server at once (SIGKILL), like a crash. It is safe to call
// twice.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	// Wait until the port is free, so Restart can bind it again.
	for i := 0; i < 500; i++ {
		c, err := net.DialTimeout("tcp", s.Addr, 50*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
}

// Restart starts the server again on the same address, empty (nothing is
// persisted).
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	if err := s.launch(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// Client returns a go-redis client for the server, closed when t ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartSentinel starts one Sentinel (redis-server --sentinel) that monitors
// master under name with a quorum of one, and returns it. A go-redis
// failover client given the Sentinel's address and name finds the master
// through it.
func StartSentinel(t testing.TB, master *Server, name string) *Server {
	t.Helper()
	bin := Binary(t)
	host, port, _ := net.SplitHostPort(master.Addr)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		p, err := freePort()
		if err != nil {
			t.Fatalf("redistest: free port: %v", err)
		}
		s, err := start(t, bin, p, []string{
			"sentinel monitor " + name + " " + host + " " + port + " 1",
			"sentinel down-after-milliseconds " + name + " 5000",
		}, nil, "--sentinel")
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("redistest: sentinel: %v", lastErr)
	return nil
}

var (
	versionOnce  sync.Once
	versionMajor int
	versionText  string
)

// serverVersion runs redis-server --version once ("Redis server v=7.0.15 ...").
func serverVersion(path string) (int, string) {
	versionOnce.Do(func() {
		out, err := exec.Command(path, "--version").Output()
		if err != nil {
			versionText = "unknown (" + err.Error() + ")"
			return
		}
		_, rest, ok := strings.Cut(string(out), "v=")
		if !ok {
			versionText = "unknown"
			return
		}
		versionText, _, _ = strings.Cut(rest, " ")
		major, _, _ := strings.Cut(versionText, ".")
		versionMajor, _ = strconv.Atoi(major)
	})
	return versionMajor, versionText
}
