package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// clientFlags are the connection flags shared by client commands.
type clientFlags struct {
	addr, caFile, certFile, keyFile, serverName string
	tls                                         bool
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", envOr("AUTHZD_ADDR", "127.0.0.1:9191"), "server address (env AUTHZD_ADDR)")
	fs.BoolVar(&c.tls, "tls", false, "connect with TLS")
	fs.StringVar(&c.caFile, "ca", "", "CA file to verify the server (implies --tls)")
	fs.StringVar(&c.certFile, "cert", "", "client certificate for mutual TLS (implies --tls)")
	fs.StringVar(&c.keyFile, "key", "", "client key for mutual TLS")
	fs.StringVar(&c.serverName, "server-name", "", "TLS server name override")
}

func (c *clientFlags) dial() (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if c.tls || c.caFile != "" || c.certFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.serverName}
		if c.caFile != "" {
			pem, err := os.ReadFile(c.caFile)
			if err != nil {
				return nil, err
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, errors.New("--ca: no PEM certificates found")
			}
		}
		if c.certFile != "" {
			cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
			if err != nil {
				return nil, fmt.Errorf("--cert/--key: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		creds = credentials.NewTLS(tc)
	}
	return grpc.NewClient(c.addr, grpc.WithTransportCredentials(creds))
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
