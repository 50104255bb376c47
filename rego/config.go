package rego

import (
	"errors"
	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Config configures policy loading and evaluation.
type Config struct {
	// Paths are directories (searched recursively) or files holding .rego
	// modules and data files (.json, .yaml, .yml). Files ending in
	// _test.rego are skipped when serving; `authzd policy test` runs them.
	// Exactly one of Paths and Bundle is set.
	Paths []string `yaml:"paths"`
	// Bundle downloads policies and data as an OPA bundle from a bundle
	// server or object store, polling for new revisions.
	Bundle *BundleConfig `yaml:"bundle"`
	// DecisionQuery is the native Check decision. Default data.authzd.decision.
	DecisionQuery string `yaml:"decision_query"`
	// ExtraQueries are prepared alongside the decision query, e.g. the
	// Envoy decision path.
	ExtraQueries []string `yaml:"extra_queries"`
	// ReloadInterval is how often Paths are checked for changes.
	// Default 1s; a negative value disables hot reload.
	ReloadInterval time.Duration `yaml:"reload_interval"`
	// Timeout bounds one evaluation; the request deadline bounds it further.
	// Default 250ms.
	Timeout time.Duration `yaml:"timeout"`
}

// Defaults.
const (
	DefaultDecisionQuery  = "data.authzd.decision"
	DefaultReloadInterval = time.Second
	DefaultTimeout        = 250 * time.Millisecond
)

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.DecisionQuery == "" {
		c.DecisionQuery = DefaultDecisionQuery
	}
	if c.ReloadInterval == 0 {
		c.ReloadInterval = DefaultReloadInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Bundle != nil {
		b := c.Bundle.WithDefaults()
		c.Bundle = &b
	}
	return c
}

// Validate reports the first configuration error, naming the key.
func (c Config) Validate() error {
	switch {
	case len(c.Paths) == 0 && c.Bundle == nil:
		return errors.New("policy: set policy.paths (policy directories or files) or policy.bundle (an OPA bundle URL)")
	case len(c.Paths) > 0 && c.Bundle != nil:
		return errors.New("policy: policy.paths and policy.bundle are both set; keep exactly one")
	case c.Bundle != nil:
		if err := c.Bundle.Validate(); err != nil {
			return err
		}
	}
	for _, q := range append([]string{c.DecisionQuery}, c.ExtraQueries...) {
		if q == "" {
			continue
		}
		if _, err := ast.ParseRef(q); err != nil {
			return fmt.Errorf("policy query %q: not a valid reference such as data.authzd.decision: %v", q, err)
		}
	}
	if c.Timeout < 0 {
		return errors.New("policy.timeout: must not be negative")
	}
	return nil
}
