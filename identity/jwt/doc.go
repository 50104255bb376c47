// Package jwt verifies JSON Web Tokens from OpenID Connect issuers (Cognito
// user pools, Auth0, Okta, OneLogin, FusionAuth, any OIDC issuer) and maps
// their claims to an identity.Principal.
//
// It owns the per-issuer configuration and vendor presets, the routing of a
// token to its issuer by the unverified iss claim, the issuers' key sets
// (discovery, JWKS fetch, scheduled and on-demand refresh, rate limiting),
// the RFC 8725 checks on the protected header, signature verification and
// claim validation.
//
// The hot path takes no locks: an issuer's key set is an immutable
// snapshot behind an atomic.Pointer, swapped by the refresher.
//
// jwt imports identity only. It must not import rego, cache or service;
// caching verified principals is the service's job (the provider
// implements identity.Cacheable).
package jwt
