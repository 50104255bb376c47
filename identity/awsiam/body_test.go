package awsiam

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/authzd/authzd/identity"
)

// A front door that does not pass the body (Envoy without
// with_request_body, forward-auth) still passes Content-Length. A
// signature checked against a body authzd did not see covers nothing: the
// body that reaches the service is whatever the sender chose.
func TestSigV4RefusesABodyItCannotSee(t *testing.T) {
	p, _ := newSigV4Provider(t)
	body := []byte(`{"amount":999}`)
	withheld := func(r *identity.SignedRequest, n int) *identity.SignedRequest {
		r.Header.Set("Content-Length", strconv.Itoa(n))
		r.Body = nil
		return r
	}
	cases := []struct {
		name string
		make func(t *testing.T) *identity.SignedRequest
	}{
		{"empty-body signature replayed with a body", func(t *testing.T) *identity.SignedRequest {
			return withheld(signed(t, "POST", "https://orders.internal/v1/pay", nil, signOpts{}), len(body))
		}},
		{"UNSIGNED-PAYLOAD with the body withheld", func(t *testing.T) *identity.SignedRequest {
			req, err := http.NewRequest("POST", "https://orders.internal/v1/pay", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Amz-Content-Sha256", unsignedPayload)
			if err := v4.NewSigner().SignHTTP(context.Background(), ordersSvc, req, unsignedPayload, testService, testRegion, time.Now()); err != nil {
				t.Fatal(err)
			}
			return withheld(&identity.SignedRequest{Method: "POST", URL: req.URL.String(), Header: req.Header.Clone()}, len(body))
		}},
		{"truncated body", func(t *testing.T) *identity.SignedRequest {
			r := signed(t, "POST", "https://orders.internal/v1/pay", body[:4], signOpts{})
			r.Header.Set("Content-Length", strconv.Itoa(len(body)))
			return r
		}},
		{"two content lengths", func(t *testing.T) *identity.SignedRequest {
			r := signed(t, "POST", "https://orders.internal/v1/pay", body, signOpts{})
			r.Header["Content-Length"] = []string{strconv.Itoa(len(body)), "0"}
			return r
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { reject(t, p, tc.make(t), "request body") })
	}
	t.Run("a matching content length is fine", func(t *testing.T) {
		r := signed(t, "POST", "https://orders.internal/v1/pay", body, signOpts{})
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
		if _, err := p.Resolve(context.Background(), identity.Credential{Kind: identity.KindAWSSigV4, Request: r}); err != nil {
			t.Fatal(err)
		}
	})
}
