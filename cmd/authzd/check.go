package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	authzdv1 "github.com/authzd/authzd/gen/authzd/v1"
)

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	apiKey := fs.String("api-key", os.Getenv("AUTHZD_API_KEY"), "API key credential (env AUTHZD_API_KEY)")
	token := fs.String("token", os.Getenv("AUTHZD_TOKEN"), "bearer token credential (env AUTHZD_TOKEN)")
	action := fs.String("action", "", "action, e.g. documents:read (required)")
	resource := fs.String("resource", "", "resource as TYPE:ID, e.g. document:42")
	attrs := fs.String("attributes", "", "resource attributes as a JSON object")
	ctxJSON := fs.String("context", "", "context as a JSON object")
	asJSON := fs.Bool("json", false, "print the whole response as JSON")
	timeout := fs.Duration("timeout", 5*time.Second, "request timeout")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *action == "" {
		fmt.Fprintln(stderr, "authzd check: --action is required")
		return 2
	}
	if *apiKey != "" && *token != "" {
		fmt.Fprintln(stderr, "authzd check: give --api-key or --token, not both")
		return 2
	}
	req := &authzdv1.CheckRequest{Action: *action, Credentials: &authzdv1.Credentials{}}
	switch {
	case *apiKey != "":
		req.Credentials.Kind = &authzdv1.Credentials_ApiKey{ApiKey: *apiKey}
	case *token != "":
		req.Credentials.Kind = &authzdv1.Credentials_BearerToken{BearerToken: strings.TrimPrefix(*token, "Bearer ")}
	}
	if *resource != "" {
		typ, id, _ := strings.Cut(*resource, ":")
		req.Resource = &authzdv1.Resource{Type: typ, Id: id}
	}
	if *attrs != "" {
		s := &structpb.Struct{}
		if err := protojson.Unmarshal([]byte(*attrs), s); err != nil {
			fmt.Fprintf(stderr, "authzd check: --attributes: %v\n", err)
			return 2
		}
		if req.Resource == nil {
			req.Resource = &authzdv1.Resource{}
		}
		req.Resource.Attributes = s
	}
	if *ctxJSON != "" {
		s := &structpb.Struct{}
		if err := protojson.Unmarshal([]byte(*ctxJSON), s); err != nil {
			fmt.Fprintf(stderr, "authzd check: --context: %v\n", err)
			return 2
		}
		req.Context = s
	}
	conn, err := cf.dial()
	if err != nil {
		fmt.Fprintf(stderr, "authzd check: %v\n", err)
		return 2
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	resp, err := authzdv1.NewAuthorizationServiceClient(conn).Check(ctx, req)
	if err != nil {
		fmt.Fprintf(stderr, "authzd check: %v\n", err)
		return 2
	}
	if *asJSON {
		b, _ := protojson.MarshalOptions{Multiline: true}.Marshal(resp)
		fmt.Fprintln(stdout, string(b))
	} else {
		who := "anonymous"
		if p := resp.GetPrincipal(); p != nil {
			who = p.GetId() + " (" + p.GetProvider() + ")"
		}
		verdict := "denied"
		if resp.GetAllowed() {
			verdict = "allowed"
		}
		fmt.Fprintf(stdout, "%s\nprincipal: %s\n", verdict, who)
		for _, r := range resp.GetReasons() {
			fmt.Fprintf(stdout, "reason: %s\n", r)
		}
		fmt.Fprintf(stdout, "decision_id: %s\npolicy_revision: %s\ncached: %t\n", resp.GetDecisionId(), resp.GetPolicyRevision(), resp.GetCached())
	}
	if resp.GetAllowed() {
		return 0
	}
	return 1
}
