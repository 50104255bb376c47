// Package cache owns the Cache interface, cache keys, and the cache
// implementations: a bounded in-memory cache with TTL (the default), Redis
// (go-redis v9 UniversalClient: one node, Sentinel or Cluster), and the
// two-tier composition with memory in front of Redis.
//
// A cache never changes an answer; it only makes the same answer cheaper.
// Keys are SHA-256 digests of length-prefixed fields, so two different field
// lists can never produce the same key by concatenation.
//
// # Redis
//
// Values are encoded by a Codec whose first byte is a format version; an
// envelope around it carries its own version and the entry's expiry, so a
// two-tier cache keeps a local copy exactly as long as Redis does. Unknown
// versions and corrupt bytes are misses, never misreads.
//
// Every Redis error is a miss. Timeouts are tens of milliseconds, go-redis
// retries are off, and a Breaker shared by every cache on one client skips
// Redis after consecutive failures, counts each skipped call, and lets one
// probe through after its open interval.
//
// # Invalidation
//
// Flush everything: every key contains a shared flush Generation (one Redis
// key); a flush raises it, so old entries are never read again and expire by
// their TTL. This is one command on a single node, Sentinel or Cluster: no
// SCAN over every master, no cross-slot command.
//
// Flush one principal: an entry written with a tag (the principal id) is
// also recorded in a per-tag set; FlushTag reads the set and UNLINKs each
// member (one command per key, so it works across Cluster slots).
//
// Other replicas learn of flushes through Invalidator, which publishes on a
// channel under the key prefix; handlers drop local entries. Pub/sub is
// at-most-once, so the generation is also re-read every second, and a
// replica whose subscription was re-established drops its local tier.
//
// Redis requirements: 7.0 or newer (PEXPIRE NX/GT), and EVAL/EVALSHA on the
// generation key for the user authzd connects as.
//
// cache must not import the identity, rego or service packages.
package cache
