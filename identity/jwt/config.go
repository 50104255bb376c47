package jwt

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Config configures the JWT provider: one entry per trusted issuer. The
// provider routes a token to the entry whose issuer equals the token's
// (unverified) iss claim and verifies it with that entry's keys only.
type Config struct {
	// Name is the provider's name in the identity chain and in errors.
	// Default "jwt".
	Name string `yaml:"name"`
	// MaxTokenBytes rejects longer tokens before any parsing.
	// Default 16384.
	MaxTokenBytes int `yaml:"max_token_bytes"`
	// Issuers lists the trusted issuers.
	Issuers []IssuerConfig `yaml:"issuers"`
}

// IssuerConfig configures one trusted issuer.
type IssuerConfig struct {
	// Name identifies the issuer in principals (principal.provider) and
	// logs. Required, unique.
	Name string `yaml:"name"`
	// Preset sets the claim mapping and checks a vendor needs: oidc
	// (default), cognito, auth0, okta, onelogin, fusionauth, keycloak.
	Preset string `yaml:"preset"`
	// Issuer must equal the token's iss claim exactly. The cognito preset
	// derives it from cognito.region and cognito.user_pool_id.
	Issuer string `yaml:"issuer"`
	// Audiences: when set, the token's aud (a string or an array) must
	// contain one of them.
	Audiences StringList `yaml:"audiences"`
	// ClientIDs: when set, the client the token was issued to must be one of
	// them. Which claim names the client depends on the preset: cognito
	// client_id (access) or aud (id), okta cid, auth0 and keycloak azp,
	// fusionauth applicationId, otherwise client_id, azp or aud.
	ClientIDs StringList `yaml:"client_ids"`
	// Algorithms allowed for this issuer. Default RS256, RS384, RS512,
	// PS256, ES256, ES384, EdDSA (the cognito and okta presets: RS256).
	// HS256/HS384/HS512 need hmac_secret and are never verified with a key
	// from a JWKS.
	Algorithms StringList `yaml:"algorithms"`
	// JWKSURI is where the issuer's key set is fetched. Default: the
	// jwks_uri of the issuer's OpenID discovery document
	// (<issuer>/.well-known/openid-configuration).
	JWKSURI string `yaml:"jwks_uri"`
	// JWKSFile reads the key set from a local file instead (re-read on
	// every refresh).
	JWKSFile string `yaml:"jwks_file"`
	// HMACSecret is the shared secret for HS* algorithms. Use ${ENV}
	// expansion; never commit it. At least 32/48/64 bytes for
	// HS256/HS384/HS512.
	HMACSecret string `yaml:"hmac_secret"`
	// ClockSkew tolerated on exp, nbf and iat. Default 60s.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// RequiredClaims must be present (and not null) in every token.
	RequiredClaims StringList `yaml:"required_claims"`
	// Types, when set, are the accepted typ header values (explicit typing,
	// RFC 8725 section 3.11), e.g. [at+jwt] to accept only OAuth access
	// tokens (RFC 9068). Compared case-insensitively, "application/"
	// optional. A token without typ is then refused.
	Types StringList `yaml:"types"`
	// Claims maps token claims to the principal.
	Claims ClaimMapping `yaml:"claims"`
	// Cognito configures the cognito preset.
	Cognito CognitoConfig `yaml:"cognito"`
	// CacheTTL bounds how long a verified principal may be cached; the
	// token's exp bounds it further. Default 5m.
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// RefreshInterval is how often the key set is re-fetched. Default 10m.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// MinRefreshInterval is the least time between two fetches, however
	// many tokens with unknown key ids arrive; also the first retry delay
	// after a failed fetch. Default 15s.
	MinRefreshInterval time.Duration `yaml:"min_refresh_interval"`
	// FetchTimeout bounds one discovery or JWKS fetch. Default 10s.
	FetchTimeout time.Duration `yaml:"fetch_timeout"`
}

// ClaimMapping says which claims become which principal fields. Each entry
// is a claim reference: a top-level claim name, taken literally (Auth0
// namespaced claims such as "https://example.com/roles" contain dots and
// slashes, Cognito's "cognito:groups" a colon), or, beginning with "/", a
// JSON pointer (RFC 6901) to a nested claim, e.g. "/realm_access/roles"
// or "/resource_access/my-client/roles" ("~1" escapes "/", "~0" "~").
// A claim that is absent, or a pointer that runs into a non-object, maps
// to nothing.
type ClaimMapping struct {
	// Subject is the claim holding the subject. Default "sub".
	Subject string `yaml:"subject"`
	// Groups are claims whose values (an array of strings, or one string)
	// become principal.groups.
	Groups StringList `yaml:"groups"`
	// Scopes are claims whose values (a space-separated string or an array
	// of strings) become principal.scopes.
	Scopes StringList `yaml:"scopes"`
	// Copy lists claims copied as they are into principal.claims: a
	// top-level claim under its own name, a pointer under its last segment
	// ("/realm_access/roles" as "roles"), or "alias=/pointer" under alias.
	Copy StringList `yaml:"copy"`
}

// CognitoConfig configures the cognito preset.
type CognitoConfig struct {
	Region     string `yaml:"region"`
	UserPoolID string `yaml:"user_pool_id"`
	// TokenUses lists the accepted token_use values: access, id.
	// Default [access].
	TokenUses StringList `yaml:"token_uses"`
}

// StringList is a list of strings that YAML may also give as one string:
// "audiences: api://default" or "audiences: [a, b]".
type StringList []string

// UnmarshalYAML accepts a scalar or a sequence. It uses the
// library-neutral form of the interface, so the package needs no YAML
// dependency.
func (l *StringList) UnmarshalYAML(unmarshal func(any) error) error {
	var many []string
	if err := unmarshal(&many); err == nil {
		if many == nil {
			many = []string{}
		}
		*l = many
		return nil
	}
	var one string
	if err := unmarshal(&one); err != nil {
		return err
	}
	if one == "" {
		*l = StringList{}
	} else {
		*l = StringList{one}
	}
	return nil
}

// Presets.
const (
	PresetOIDC       = "oidc"
	PresetCognito    = "cognito"
	PresetAuth0      = "auth0"
	PresetOkta       = "okta"
	PresetOneLogin   = "onelogin"
	PresetFusionAuth = "fusionauth"
	PresetKeycloak   = "keycloak"
)

// Defaults.
const (
	DefaultName               = "jwt"
	DefaultMaxTokenBytes      = 16 << 10
	DefaultClockSkew          = 60 * time.Second
	DefaultCacheTTL           = 5 * time.Minute
	DefaultRefreshInterval    = 10 * time.Minute
	DefaultMinRefreshInterval = 15 * time.Second
	DefaultFetchTimeout       = 10 * time.Second
)

// DefaultAlgorithms are allowed when an issuer does not list its own.
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"}

var presets = map[string]struct {
	algorithms []string
	claims     ClaimMapping
	// clientClaims name, in order of preference, the claim compared with
	// client_ids (cognito decides per token_use).
	clientClaims []string
}{
	PresetOIDC: {
		claims:       ClaimMapping{Subject: "sub", Groups: []string{"groups"}, Scopes: []string{"scope", "scp"}},
		clientClaims: []string{"client_id", "azp", "aud"},
	},
	PresetCognito: {
		algorithms: []string{"RS256"},
		claims: ClaimMapping{Subject: "sub", Groups: []string{"cognito:groups"}, Scopes: []string{"scope"},
			Copy: []string{"token_use", "client_id", "username", "cognito:username"}},
	},
	PresetAuth0: {
		claims:       ClaimMapping{Subject: "sub", Scopes: []string{"scope"}, Copy: []string{"permissions", "azp"}},
		clientClaims: []string{"azp"},
	},
	PresetOkta: {
		algorithms:   []string{"RS256"},
		claims:       ClaimMapping{Subject: "sub", Groups: []string{"groups"}, Scopes: []string{"scp"}, Copy: []string{"cid", "uid"}},
		clientClaims: []string{"cid"},
	},
	PresetOneLogin: {
		claims:       ClaimMapping{Subject: "sub", Groups: []string{"groups"}, Scopes: []string{"scope"}, Copy: []string{"sid"}},
		clientClaims: []string{"client_id", "aud"},
	},
	PresetFusionAuth: {
		claims: ClaimMapping{Subject: "sub", Groups: []string{"roles"}, Scopes: []string{"scope"},
			Copy: []string{"applicationId", "tid", "authenticationType"}},
		clientClaims: []string{"applicationId"},
	},
	// Keycloak puts realm roles in realm_access.roles and, with a group
	// mapper, group paths in groups; azp is the client the token was
	// issued to (aud is often just "account").
	PresetKeycloak: {
		claims: ClaimMapping{Subject: "sub", Groups: []string{"/realm_access/roles", "groups"}, Scopes: []string{"scope"},
			Copy: []string{"azp", "preferred_username"}},
		clientClaims: []string{"azp"},
	},
}

// supportedAlgs are the JWS algorithms the provider can verify.
var supportedAlgs = []string{
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512",
}

func isHMAC(alg string) bool { return strings.HasPrefix(alg, "HS") }

// WithDefaults returns c with presets applied and zero fields set to their
// defaults. Fields set explicitly win over a preset.
func (c Config) WithDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.MaxTokenBytes == 0 {
		c.MaxTokenBytes = DefaultMaxTokenBytes
	}
	iss := make([]IssuerConfig, len(c.Issuers))
	for i, ic := range c.Issuers {
		iss[i] = ic.withDefaults()
	}
	c.Issuers = iss
	return c
}

func (ic IssuerConfig) withDefaults() IssuerConfig {
	if ic.Preset == "" {
		ic.Preset = PresetOIDC
	}
	p, ok := presets[ic.Preset]
	if !ok {
		return ic // Validate reports the unknown preset.
	}
	if ic.Preset == PresetCognito {
		if ic.Issuer == "" && ic.Cognito.Region != "" && ic.Cognito.UserPoolID != "" {
			ic.Issuer = "https://cognito-idp." + ic.Cognito.Region + ".amazonaws.com/" + ic.Cognito.UserPoolID
		}
		// Cognito publishes its keys at a fixed path and no discovery is
		// needed.
		if ic.JWKSURI == "" && ic.JWKSFile == "" && ic.Issuer != "" {
			ic.JWKSURI = strings.TrimSuffix(ic.Issuer, "/") + "/.well-known/jwks.json"
		}
		if len(ic.Cognito.TokenUses) == 0 {
			ic.Cognito.TokenUses = []string{"access"}
		}
	}
	if len(ic.Algorithms) == 0 {
		switch {
		case ic.HMACSecret != "":
			ic.Algorithms = []string{"HS256"}
		case p.algorithms != nil:
			ic.Algorithms = slices.Clone(p.algorithms)
		default:
			ic.Algorithms = slices.Clone(DefaultAlgorithms)
		}
	}
	if ic.Claims.Subject == "" {
		ic.Claims.Subject = p.claims.Subject
	}
	if ic.Claims.Groups == nil {
		ic.Claims.Groups = slices.Clone(p.claims.Groups)
	}
	if ic.Claims.Scopes == nil {
		ic.Claims.Scopes = slices.Clone(p.claims.Scopes)
	}
	if ic.Claims.Copy == nil {
		ic.Claims.Copy = slices.Clone(p.claims.Copy)
	}
	if ic.ClockSkew == 0 {
		ic.ClockSkew = DefaultClockSkew
	}
	if ic.CacheTTL == 0 {
		ic.CacheTTL = DefaultCacheTTL
	}
	if ic.RefreshInterval == 0 {
		ic.RefreshInterval = DefaultRefreshInterval
	}
	if ic.MinRefreshInterval == 0 {
		ic.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if ic.FetchTimeout == 0 {
		ic.FetchTimeout = DefaultFetchTimeout
	}
	return ic
}

var cognitoPoolID = regexp.MustCompile(`^[a-z0-9-]+_[0-9A-Za-z]+$`)

// Validate reports every problem in c (after WithDefaults), each naming
// the key to fix, e.g. "issuers[0].audiences: ...".
func (c Config) Validate() error { return c.ValidateAt("") }

// ValidateAt is Validate with every key prefixed, e.g. "identity.jwt.", so
// each reported problem names the full path in the caller's file.
func (c Config) ValidateAt(prefix string) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s%s: %s", prefix, key, fmt.Sprintf(format, args...)))
	}
	if c.MaxTokenBytes < 256 {
		bad("max_token_bytes", "must be at least 256")
	}
	if len(c.Issuers) == 0 {
		bad("issuers", "at least one issuer is required")
	}
	names := map[string]int{}
	issuers := map[string]int{}
	for i, ic := range c.Issuers {
		k := func(field string) string { return fmt.Sprintf("issuers[%d].%s", i, field) }
		if ic.Name == "" {
			bad(k("name"), "required")
		} else if j, dup := names[ic.Name]; dup {
			bad(k("name"), "%q is already used by issuers[%d]", ic.Name, j)
		} else {
			names[ic.Name] = i
		}
		p, ok := presets[ic.Preset]
		if !ok {
			bad(k("preset"), "unknown preset %q (want oidc, cognito, auth0, okta, onelogin, fusionauth or keycloak)", ic.Preset)
			continue
		}
		_ = p
		if ic.Issuer == "" {
			if ic.Preset == PresetCognito {
				bad(k("issuer"), "required (or set cognito.region and cognito.user_pool_id)")
			} else {
				bad(k("issuer"), "required: the exact iss claim of the issuer's tokens")
			}
		} else if j, dup := issuers[ic.Issuer]; dup {
			bad(k("issuer"), "%q is already configured by issuers[%d]; one entry per issuer", ic.Issuer, j)
		} else {
			issuers[ic.Issuer] = i
		}
		if ic.Preset == PresetCognito {
			cg := ic.Cognito
			if cg.UserPoolID != "" && !cognitoPoolID.MatchString(cg.UserPoolID) {
				bad(k("cognito.user_pool_id"), "%q is not a user pool id (like us-east-1_AbC123)", cg.UserPoolID)
			}
			if cg.UserPoolID != "" && cg.Region != "" && !strings.HasPrefix(cg.UserPoolID, cg.Region+"_") {
				bad(k("cognito.user_pool_id"), "%q is not in region %q", cg.UserPoolID, cg.Region)
			}
			for _, u := range cg.TokenUses {
				if u != "access" && u != "id" {
					bad(k("cognito.token_uses"), "unknown token_use %q (want access or id)", u)
				}
			}
			if len(ic.ClientIDs) == 0 {
				bad(k("client_ids"), "required for cognito: access tokens carry no aud, only client_id")
			}
			if len(ic.Audiences) > 0 {
				bad(k("audiences"), "cognito tokens are checked by client_ids; remove audiences")
			}
		} else if len(ic.Audiences) == 0 && len(ic.ClientIDs) == 0 {
			bad(k("audiences"), "set audiences and/or client_ids: a token issued for another application must not be accepted")
		}
		var hasHMAC, hasAsym bool
		for _, a := range ic.Algorithms {
			switch {
			case !slices.Contains(supportedAlgs, a):
				bad(k("algorithms"), "unsupported algorithm %q (supported: %s)", a, strings.Join(supportedAlgs, ", "))
			case isHMAC(a):
				hasHMAC = true
				if ic.HMACSecret == "" {
					bad(k("algorithms"), "%s needs hmac_secret for this issuer", a)
				} else if min := hmacMinLen(a); len(ic.HMACSecret) < min {
					bad(k("hmac_secret"), "%s needs a secret of at least %d bytes", a, min)
				}
			default:
				hasAsym = true
			}
		}
		if len(ic.Algorithms) == 0 {
			bad(k("algorithms"), "at least one algorithm is required")
		}
		if ic.HMACSecret != "" && !hasHMAC {
			bad(k("hmac_secret"), "set, but algorithms allows no HS256/HS384/HS512")
		}
		if ic.JWKSURI != "" && ic.JWKSFile != "" {
			bad(k("jwks_file"), "set only one of jwks_uri and jwks_file")
		}
		if hasAsym {
			if ic.JWKSURI != "" {
				if err := checkFetchURL(ic.JWKSURI); err != nil {
					bad(k("jwks_uri"), "%v", err)
				}
			} else if ic.JWKSFile == "" && ic.Issuer != "" {
				if err := checkFetchURL(ic.Issuer); err != nil {
					bad(k("jwks_uri"), "required: the issuer %q cannot be used for discovery (%v)", ic.Issuer, err)
				}
			}
		}
		if ic.Claims.Subject == "" {
			bad(k("claims.subject"), "required")
		}
		ic.Claims.compile(func(key, format string, args ...any) { bad(k(key), format, args...) })
		for _, ty := range ic.Types {
			if normType(ty) == "" {
				bad(k("types"), "empty type")
			}
		}
		if ic.ClockSkew < 0 || ic.ClockSkew > 10*time.Minute {
			bad(k("clock_skew"), "must be between 0 and 10m")
		}
		if ic.CacheTTL < 0 {
			bad(k("cache_ttl"), "must not be negative")
		}
		if ic.MinRefreshInterval < 0 {
			bad(k("min_refresh_interval"), "must not be negative")
		}
		if ic.RefreshInterval < ic.MinRefreshInterval {
			bad(k("refresh_interval"), "must be at least min_refresh_interval (%s)", ic.MinRefreshInterval)
		}
		if ic.FetchTimeout <= 0 {
			bad(k("fetch_timeout"), "must be positive")
		}
	}
	return errors.Join(errs...)
}

// normType is a typ value compared case-insensitively without the
// optional "application/" prefix (RFC 7515 section 4.1.9).
func normType(t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	return strings.TrimPrefix(t, "application/")
}

func hmacMinLen(alg string) int {
	switch alg {
	case "HS384":
		return 48
	case "HS512":
		return 64
	}
	return 32
}

// checkFetchURL accepts https URLs, and http only on loopback hosts (a
// local issuer during development).
func checkFetchURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q must use https (http is allowed only on loopback)", raw)
	}
	return fmt.Errorf("%q must use https", raw)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
