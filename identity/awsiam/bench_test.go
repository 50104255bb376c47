package awsiam

import (
	"context"
	"github.com/authzd/authzd/identity/awsiam/awsiamtest"
	"testing"
)

func BenchmarkParseAuthorization(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseAuthorization(validAuthz); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSigV4Resolve is the per-request cost of direct verification: a
// signed POST with a JSON body and a query string.
func BenchmarkSigV4Resolve(b *testing.B) {
	p, _ := newSigV4Provider(b)
	cred := sigv4Cred(signed(b, "POST", "https://orders.internal/v1/orders?limit=10&cursor=abc", []byte(`{"id":42,"items":[1,2,3]}`),
		signOpts{header: map[string]string{"Content-Type": "application/json"}}))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Resolve(ctx, cred); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSTSResolve is an uncached STS proof: checks plus a loopback
// round trip to the local STS (which itself re-signs the request).
func BenchmarkSTSResolve(b *testing.B) {
	sts := awsiamtest.New(b)
	p := newSTSProvider(b, sts.URL())
	cred := sigv4Cred(proof(b, sts, awsiamtest.Orders.Creds, nil))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Resolve(ctx, cred); err != nil {
			b.Fatal(err)
		}
	}
}
