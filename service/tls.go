package service

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"

	"github.com/authzd/authzd/internal/filewatch"
)

// tlsReloader serves the current certificate and client CAs, re-reading the
// files when they change, so certificates rotate without a restart.
type tlsReloader struct {
	cfg TLSConfig
	log *slog.Logger
	cur atomic.Pointer[tls.Config]
	sig string
}

func newTLSReloader(cfg TLSConfig, log *slog.Logger) (*tlsReloader, error) {
	r := &tlsReloader{cfg: cfg, log: log}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *tlsReloader) signature() string {
	return filewatch.Signature(r.cfg.CertFile, r.cfg.KeyFile, r.cfg.ClientCAFile)
}

func (r *tlsReloader) load() error {
	sig := r.signature()
	cert, err := tls.LoadX509KeyPair(r.cfg.CertFile, r.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("tls.cert_file/tls.key_file: %w", err)
	}
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if r.cfg.ClientCAFile != "" {
		pem, err := os.ReadFile(r.cfg.ClientCAFile)
		if err != nil {
			return fmt.Errorf("tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return errors.New("tls.client_ca_file: no PEM certificates found")
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	r.cur.Store(c)
	r.sig = sig
	return nil
}

// Config returns a tls.Config that always serves the latest files.
func (r *tlsReloader) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.cur.Load(), nil
		},
	}
}

func (r *tlsReloader) run(ctx context.Context) {
	filewatch.Every(ctx, r.cfg.ReloadInterval, func() {
		if r.signature() == r.sig {
			return
		}
		if err := r.load(); err != nil {
			r.log.Error("TLS reload failed; keeping the current certificate", "error", err)
		} else {
			r.log.Info("TLS certificate reloaded")
		}
	})
}
