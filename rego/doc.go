// Package rego loads, compiles and hot-reloads Rego policies and data, from
// directories or from OPA bundles downloaded over HTTP, and evaluates
// decisions with prepared queries.
//
// A PolicySet is immutable once built: its revision is the SHA-256 of every
// module and data document, and its queries are prepared once. The Engine
// swaps sets atomically; a set that fails to load or compile never replaces
// the last good one.
//
// rego must not import the identity, cache or service packages.
package rego
