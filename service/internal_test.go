package service

import (
	"testing"

	"github.com/authzd/authzd/cache"
	"github.com/authzd/authzd/identity"
	"github.com/authzd/authzd/rego"
	"google.golang.org/protobuf/types/known/structpb"

	authzdv1 "github.com/authzd/authzd/gen/authzd/v1"
)

func regoCfg(paths ...string) rego.Config { return rego.Config{Paths: paths} }

func TestDecisionKeyCoversEveryField(t *testing.T) {
	st := func(m map[string]any) *structpb.Struct { s, _ := structpb.NewStruct(m); return s }
	p1 := cache.NewKeyBuilder("p").String("a").Sum()
	p2 := cache.NewKeyBuilder("p").String("b").Sum()
	base := checkArgs{action: "read", resource: &authzdv1.Resource{Type: "doc", Id: "1", Attributes: st(map[string]any{"x": 1})}, context: st(map[string]any{"ip": "1"})}
	k := decisionKey("rev1", p1, base)
	if k != decisionKey("rev1", p1, base) {
		t.Fatal("keys must be deterministic")
	}
	variants := map[string]cache.Key{
		"revision":  decisionKey("rev2", p1, base),
		"principal": decisionKey("rev1", p2, base),
		"action":    decisionKey("rev1", p1, checkArgs{action: "write", resource: base.resource, context: base.context}),
		"type":      decisionKey("rev1", p1, checkArgs{action: "read", resource: &authzdv1.Resource{Type: "doc2", Id: "1", Attributes: base.resource.Attributes}, context: base.context}),
		"id":        decisionKey("rev1", p1, checkArgs{action: "read", resource: &authzdv1.Resource{Type: "doc", Id: "2", Attributes: base.resource.Attributes}, context: base.context}),
		"attrs":     decisionKey("rev1", p1, checkArgs{action: "read", resource: &authzdv1.Resource{Type: "doc", Id: "1", Attributes: st(map[string]any{"x": 2})}, context: base.context}),
		"context":   decisionKey("rev1", p1, checkArgs{action: "read", resource: base.resource, context: st(map[string]any{"ip": "2"})}),
		// Moving bytes between fields must not collide.
		"shifted": decisionKey("rev1", p1, checkArgs{action: "rea", resource: &authzdv1.Resource{Type: "ddoc", Id: "1", Attributes: base.resource.Attributes}, context: base.context}),
	}
	for name, v := range variants {
		if v == k {
			t.Errorf("changing %s did not change the key", name)
		}
	}
}

func TestPrincipalFingerprintCoversClaims(t *testing.T) {
	a := newResolved(principalWith("g1", "v"))
	b := newResolved(principalWith("g1", "w"))
	c := newResolved(principalWith("g2", "v"))
	if a.fp == b.fp || a.fp == c.fp {
		t.Fatal("fingerprint must change with claims and groups")
	}
	if a.fp != newResolved(principalWith("g1", "v")).fp {
		t.Fatal("fingerprint must be deterministic")
	}
}

func principalWith(group, claim string) *identity.Principal {
	return &identity.Principal{ID: "u", Provider: "p", Subject: "s", Type: "jwt", Groups: []string{group}, Claims: map[string]any{"c": claim, "n": 1}}
}
