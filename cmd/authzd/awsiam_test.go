package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authzd/authzd/identity"
	"github.com/authzd/authzd/identity/awsiam"
	"github.com/authzd/authzd/identity/awsiam/awsiamtest"
)

func runAWSIAM(stdin string, args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = cmdAWSIAM(args, strings.NewReader(stdin), &o, &e)
	return code, o.String(), e.String()
}

func TestAWSIAMAddKeyCommand(t *testing.T) {
	encKey := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{3}, 32))
	t.Setenv("AUTHZD_AWS_KEYS_KEY", encKey)
	file := filepath.Join(t.TempDir(), "aws-keys.yaml")

	code, out, errOut := runAWSIAM("", "add-key", "--file", file, "--arn", "arn:aws:iam::123456789012:user/services/orders")
	if code != 0 || !strings.Contains(out, "access_key_id: AKZD") || !strings.Contains(out, "secret_access_key: ") {
		t.Fatalf("generate: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = runAWSIAM("billing-secret\n", "add-key", "--file", file, "--arn", "arn:aws:iam::123456789012:role/billing", "--access-key-id", "AKZDBILLING1")
	if code != 0 || strings.Contains(out, "billing-secret") {
		t.Fatalf("given key: exit %d\n%s%s", code, out, errOut)
	}
	raw, _ := os.ReadFile(file)
	if strings.Contains(string(raw), "billing-secret") {
		t.Fatalf("keys file holds a plaintext secret:\n%s", raw)
	}
	key, _ := awsiam.DecodeEncryptionKey(encKey)
	s, err := awsiam.OpenFileStore(file, key)
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.Lookup(context.Background(), "AKZDBILLING1")
	if err != nil || string(k.Secret) != "billing-secret" || s.Len() != 2 {
		t.Fatalf("lookup: %v, len %d", err, s.Len())
	}

	code, out, _ = runAWSIAM("s3cr3t\n", "encrypt-secret", "--access-key-id", "AKZDX1")
	if code != 0 || !strings.HasPrefix(out, "enc:v1:") {
		t.Fatalf("encrypt-secret: exit %d %s", code, out)
	}
	t.Setenv("AUTHZD_AWS_KEYS_KEY", "")
	if code, _, errOut := runAWSIAM("", "add-key", "--file", file, "--arn", "arn:aws:iam::123456789012:user/x"); code != 1 || !strings.Contains(errOut, "no encryption key") {
		t.Fatalf("without a key: exit %d %s", code, errOut)
	}
}

func TestAWSIAMProofCommand(t *testing.T) {
	sts := awsiamtest.New(t)
	t.Setenv("AWS_ACCESS_KEY_ID", awsiamtest.Alice.Creds.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", awsiamtest.Alice.Creds.SecretAccessKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	code, out, errOut := runAWSIAM("", "proof", "--server-id", "authzd.test", "--endpoint", sts.URL())
	if code != 0 {
		t.Fatalf("exit %d %s", code, errOut)
	}
	r, err := awsiam.ParseProofHeader(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	p, err := awsiam.NewSTSProvider("aws-iam", awsiam.Config{STS: awsiam.STSConfig{
		Enabled: true, Endpoint: sts.URL(), ServerID: "authzd.test", BoundARNs: []string{"*"},
	}}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	pr, err := p.Resolve(context.Background(), identity.Credential{Kind: identity.KindAWSSigV4, Request: r})
	if err != nil || pr.ID != awsiamtest.Alice.ARN {
		t.Fatalf("resolve: %v %v", pr, err)
	}
}
