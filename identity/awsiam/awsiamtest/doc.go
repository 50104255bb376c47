// Package awsiamtest runs a local AWS STS for tests: a real HTTP server
// that verifies SigV4 signatures with known keys (recomputing them with the
// AWS SDK signer, independently of authzd's verifier) and answers
// sts:GetCallerIdentity in STS's own XML, or with STS's ErrorResponse.
//
// It is test support only: production code must not import it. It must not
// import authzd packages either, so that awsiam's own tests can use it.
package awsiamtest
