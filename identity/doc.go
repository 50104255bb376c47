// Package identity turns credentials into verified principals.
//
// It owns the Provider interface, the Chain that routes a credential to the
// provider that can verify it, and the error kinds a provider reports. Each
// adapter lives in a sub-package (apikey, jwt, awsiam, ...).
//
// identity must not import the rego, cache or service packages: it is usable
// as a library on its own. Caching of verified identities is the caller's job.
package identity
