// Package apikey issues and verifies authzd API keys.
//
// A key looks like azd_<id>_<secret>: the id names the record and is not
// secret; the secret carries 256 bits of entropy. Only the SHA-256 of the
// whole key is stored (SHA-256 is right for high-entropy secrets: there is
// nothing to brute-force), and it is compared in constant time. A key is
// shown once, when it is created.
//
// Records live in a Store: a YAML file for the embedded default, watched for
// changes so revocations take effect without a restart.
//
// apikey must not import the cache, rego or service packages.
package apikey
