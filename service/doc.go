// Package service serves authzd: the authzd.v1 gRPC API, health and
// reflection, the HTTP side (metrics, health, readiness), and the Check flow
// that ties identity, policy and cache together.
//
// The flow lives in Authorizer; the gRPC and HTTP front doors are thin
// adapters over it. The Envoy ext_authz service and the HTTP forward-auth
// doors share one flow on top of it (envoy*.go, forwardauth.go). Errors are mapped to gRPC codes in errors.go alone.
//
// service imports identity, rego and cache; nothing below it imports service.
package service
