// Package redistest starts real redis-server processes for tests: a single
// node (Start) and a 3-master Redis Cluster (StartCluster), each on free
// loopback ports in its own temporary directory, stopped when the test
// ends. It never touches a Redis it did not start.
//
// Where redis-server is not installed, tests skip with a message; with
// AUTHZD_REQUIRE_REDIS=1 (set in CI) the skip becomes a failure.
//
// redistest must not import any authzd package.
package redistest
