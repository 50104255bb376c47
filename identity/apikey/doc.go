// Package apikey issues and verifies authzd API keys.
//
// A key looks like azd_<id>_<secret>: the id names the record and is not
// secret; the secret carries 256 bits of entropy. Only the SHA-256 of the
// whole key is stored (SHA-256 is right for high-entropy secrets: there is
// nothing to brute-force), and it is compared in constant time. A key is
// shown once, when it is created.
//
// Records live in a Store: a YAML file for the embedded default, watched for
// changes so revocations take effect without a restart; or Redis
// (RedisStore), shared by every replica, where a revocation reaches every
// replica through pub/sub and a polled revocation counter within about a
// second. A Redis holding keys must persist its data (appendonly yes): a
// restart without persistence loses every key. While Redis is down, keys
// this replica has read keep verifying for a bounded time (StaleFor) and
// others are unavailable; revocations made meanwhile are applied as soon as
// Redis answers again.
//
// apikey must not import the cache, rego or service packages.
package apikey
