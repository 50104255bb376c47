// Package awsiam verifies AWS IAM identities for authzd, in two modes that can
// be enabled together:
//
//   - STS proof (the pattern Vault and Consul use): the caller signs an
//     sts:GetCallerIdentity request with its own AWS credentials and hands it
//     to authzd, which checks its shape, forwards it to STS, and takes the
//     caller's ARN from the answer. STSProvider.
//   - Direct SigV4: a service signs its own request with an access key that
//     authzd holds (secrets encrypted at rest), and authzd verifies the
//     signature itself. SigV4Provider, backed by a KeyStore.
//
// It owns the SigV4 Authorization header parser, the canonical request
// builder and verifier, the STS client and response decoder, ARN
// canonicalisation and matching, the proof header codec used by the HTTP
// front doors, and the encrypted keys file.
//
// awsiam imports only the identity package from authzd (plus the AWS SDK's
// arn parser, and its SigV4 signer for NewProof); it must not import rego,
// cache or service. Caching verified principals is the caller's job:
// STSProvider implements identity.Cacheable, SigV4Provider does not (so that
// a removed key stops working on the next request).
package awsiam
