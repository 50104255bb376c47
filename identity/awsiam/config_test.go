package awsiam

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestConfigYAMLAndDefaults(t *testing.T) {
	doc := `
sts:
  enabled: true
  server_id: authzd.prod
  bound_arns: ["arn:aws:iam::123456789012:role/orders-*"]
sigv4:
  enabled: true
  region: eu-west-1
  service: authzd
  keys_file: /etc/authzd/aws-keys.yaml
  encryption_key: ` + testEncryptionKey + `
  max_skew: 2m
`
	var c Config
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	c = c.WithDefaults()
	if err := c.Validate("identity.aws_iam"); err != nil {
		t.Fatal(err)
	}
	if c.STS.Endpoint != "https://sts.amazonaws.com/" || c.STS.Region != "us-east-1" ||
		c.STS.ServerIDHeader != "X-Authzd-Server-ID" || c.STS.Timeout != 5*time.Second {
		t.Fatalf("sts defaults = %+v", c.STS)
	}
	if c.SigV4.MaxSkew != 2*time.Minute {
		t.Fatalf("max_skew = %v", c.SigV4.MaxSkew)
	}
	// The encryption key never prints, whichever way the config is dumped.
	out, _ := yaml.Marshal(c)
	js, _ := json.Marshal(c)
	for _, s := range []string{string(out), string(js), fmt.Sprintf("%v %+v %#v %s", c, c, c, c.SigV4.EncryptionKey)} {
		if strings.Contains(s, testEncryptionKey) {
			t.Fatalf("encryption key printed: %s", s)
		}
	}
}

func TestConfigValidateNamesTheKey(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"sts without server_id and bound_arns", Config{STS: STSConfig{Enabled: true}},
			[]string{"identity.aws_iam.sts.server_id: is required", "identity.aws_iam.sts.bound_arns: is required"}},
		{"sts bad endpoint", Config{STS: STSConfig{Enabled: true, Endpoint: "ftp://x", ServerID: "a", BoundARNs: []string{"*"}}},
			[]string{"identity.aws_iam.sts.endpoint: must be an http(s) URL"}},
		{"sts endpoint with query", Config{STS: STSConfig{Enabled: true, Endpoint: "https://sts.amazonaws.com/?a=b", ServerID: "a", BoundARNs: []string{"*"}}},
			[]string{"identity.aws_iam.sts.endpoint: must be scheme://host"}},
		{"bad bound pattern", Config{STS: STSConfig{Enabled: true, ServerID: "a", BoundARNs: []string{"role/x"}}},
			[]string{"identity.aws_iam.sts.bound_arns[0]: must start with \"arn:\""}},
		{"bad allowed header", Config{STS: STSConfig{Enabled: true, ServerID: "a", BoundARNs: []string{"*"}, AllowedHeaders: []string{"X Bad"}}},
			[]string{"identity.aws_iam.sts.allowed_headers[0]"}},
		{"sigv4 missing everything", Config{SigV4: SigV4Config{Enabled: true}},
			[]string{"sigv4.region: is required", "sigv4.service: is required", "sigv4.keys_file: is required", "sigv4.encryption_key: is required"}},
		{"short encryption key", Config{SigV4: SigV4Config{Enabled: true, Region: "r", Service: "s", KeysFile: "f", EncryptionKey: "AAAA"}},
			[]string{"sigv4.encryption_key: must decode to 32 bytes, got 3"}},
		{"skew too large", Config{SigV4: SigV4Config{Enabled: true, Region: "r", Service: "s", KeysFile: "f", EncryptionKey: Secret(testEncryptionKey), MaxSkew: time.Hour}},
			[]string{"sigv4.max_skew: must be between 1s and 15m"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.WithDefaults().Validate("identity.aws_iam")
			if err == nil {
				t.Fatal("config accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if err := (Config{}).WithDefaults().Validate("x"); err != nil {
		t.Fatalf("disabled config: %v", err)
	}
}

func TestParseCaller(t *testing.T) {
	cases := []struct {
		raw                      string
		arn, role, user, session string
		wantErr                  bool
	}{
		{raw: "arn:aws:sts::123456789012:assumed-role/orders-api/i-0abc", arn: "arn:aws:iam::123456789012:role/orders-api", role: "orders-api", session: "i-0abc"},
		{raw: "arn:aws-cn:sts::123456789012:assumed-role/r/s", arn: "arn:aws-cn:iam::123456789012:role/r", role: "r", session: "s"},
		{raw: "arn:aws:iam::123456789012:user/path/to/bob", arn: "arn:aws:iam::123456789012:user/path/to/bob", user: "bob"},
		{raw: "arn:aws:iam::123456789012:root", arn: "arn:aws:iam::123456789012:root", user: "root"},
		{raw: "arn:aws:sts::123456789012:federated-user/carol", arn: "arn:aws:sts::123456789012:federated-user/carol", user: "carol"},
		{raw: "arn:aws:iam::123456789012:role/svc/deploy", arn: "arn:aws:iam::123456789012:role/svc/deploy", role: "deploy"},
		{raw: "arn:aws:sts::123456789012:assumed-role/r", wantErr: true},
		{raw: "arn:aws:sts::123456789012:assumed-role/r/s/extra", wantErr: true},
		{raw: "arn:aws:iam::12345:user/x", wantErr: true},
		{raw: "arn:aws:iam:us-east-1:123456789012:user/x", wantErr: true},
		{raw: "arn:aws:iam::123456789012:user/*", wantErr: true},
		{raw: "arn:aws:iam::123456789012:user//x", wantErr: true},
		{raw: "arn:aws:s3:::bucket", wantErr: true},
		{raw: "not-an-arn", wantErr: true},
	}
	for _, tc := range cases {
		c, err := ParseCaller(tc.raw, "", "")
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v", tc.raw, err)
			continue
		}
		if err == nil && (c.ARN != tc.arn || c.Role != tc.role || c.User != tc.user || c.Session != tc.session) {
			t.Errorf("%s: got %+v", tc.raw, c)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		p, s string
		want bool
	}{
		{"*", "anything", true},
		{"arn:aws:iam::123456789012:role/orders-*", "arn:aws:iam::123456789012:role/orders-api", true},
		{"arn:aws:iam::123456789012:role/orders-*", "arn:aws:iam::123456789012:role/billing", false},
		{"arn:aws:iam::*:role/deploy", "arn:aws:iam::210987654321:role/deploy", true},
		{"arn:aws:iam::*:role/deploy", "arn:aws:iam::210987654321:role/deployer", false},
		{"arn:aws:iam::123456789012:role/orders", "arn:aws:iam::123456789012:role/orders", true},
		{"arn:aws:iam::123456789012:role/orders", "arn:aws:iam::123456789012:role/orders2", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"", "", true},
		{"", "a", false},
	}
	for _, tc := range cases {
		if got := globMatch(tc.p, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
	// Assumed-role sessions match a pattern on the raw ARN too.
	c, _ := ParseCaller("arn:aws:sts::123456789012:assumed-role/ci/build-7", "", "")
	if !matchAny([]string{"arn:aws:sts::123456789012:assumed-role/ci/build-*"}, c) {
		t.Error("session pattern did not match")
	}
}

func TestParseProofHeader(t *testing.T) {
	good := `{"method":"POST","url":"https://sts.amazonaws.com/","headers":{"authorization":"AWS4-HMAC-SHA256 x","X-Amz-Date":["20240101T000000Z"]},"body":"QWN0aW9uPUdldENhbGxlcklkZW50aXR5"}`
	for name, enc := range map[string]string{
		"std":       b64(good, false, true),
		"std nopad": b64(good, false, false),
		"url":       b64(good, true, true),
		"url nopad": b64(good, true, false),
	} {
		r, err := ParseProofHeader(enc)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Method != "POST" || string(r.Body) != "Action=GetCallerIdentity" || r.Header.Get("Authorization") != "AWS4-HMAC-SHA256 x" || r.Header.Get("X-Amz-Date") == "" {
			t.Fatalf("%s: %+v", name, r)
		}
	}
	bad := map[string]string{
		"empty":         "",
		"not base64":    "!!!",
		"not JSON":      b64("nope", false, true),
		"unknown field": b64(`{"method":"POST","url":"u","extra":1}`, false, true),
		"bad method":    b64(`{"method":"post","url":"https://x/"}`, false, true),
		"header CRLF":   b64(`{"method":"POST","url":"https://x/","headers":{"a":"b\r\nc: d"}}`, false, true),
		"bad header":    b64(`{"method":"POST","url":"https://x/","headers":{"a b":"c"}}`, false, true),
		"body not b64":  b64(`{"method":"POST","url":"https://x/","body":"%%%"}`, false, true),
		"trailing":      b64(`{"method":"POST","url":"https://x/"} {}`, false, true),
		"too large":     strings.Repeat("A", 17<<10),
		"header number": b64(`{"method":"POST","url":"https://x/","headers":{"a":1}}`, false, true),
	}
	for name, v := range bad {
		if _, err := ParseProofHeader(v); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
