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
	Paths []string `yaml:"paths"`
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
	return c
}

// Validate reports the first configuration error, naming the key.
func (c Config) Validate() error {
	if len(c.Paths) == 0 {
		return errors.New("policy.paths: at least one policy directory or file is required")
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
