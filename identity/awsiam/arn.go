package awsiam

import (
	"errors"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/arn"

	"github.com/authzd/authzd/identity"
)

// PrincipalType is identity.Principal.Type for AWS IAM principals.
const PrincipalType = "aws_iam"

// Caller is an AWS identity, canonicalised.
type Caller struct {
	// ARN is canonical: an assumed-role session becomes its role,
	// arn:aws:iam::ACCOUNT:role/NAME.
	ARN string
	// CallerARN is the ARN as reported (for sessions,
	// arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION).
	CallerARN string
	Account   string
	// Exactly one of Role and User is set.
	Role    string
	User    string
	Session string
	// UserID is STS's unique id (AIDA..., or AROA...:session).
	UserID string
}

// ParseCaller canonicalises an ARN returned by sts:GetCallerIdentity or
// held in the keys file. account, when not empty, must match the ARN's.
func ParseCaller(raw, account, userID string) (Caller, error) {
	a, err := arn.Parse(raw)
	if err != nil {
		return Caller{}, errors.New("caller ARN is malformed")
	}
	if a.Partition == "" || strings.Contains(a.Partition, "*") || a.Region != "" {
		return Caller{}, errors.New("caller ARN has an invalid partition or region")
	}
	if len(a.AccountID) != 12 || !allDigits(a.AccountID) {
		return Caller{}, errors.New("caller ARN has an invalid account id")
	}
	if account != "" && account != a.AccountID {
		return Caller{}, errors.New("caller account does not match its ARN")
	}
	c := Caller{ARN: raw, CallerARN: raw, Account: a.AccountID, UserID: userID}
	segs := strings.Split(a.Resource, "/")
	last := segs[len(segs)-1]
	for _, s := range segs {
		if s == "" || strings.ContainsAny(s, "*\x00") {
			return Caller{}, errors.New("caller ARN has an empty or wildcard path segment")
		}
	}
	switch {
	case a.Service == "sts" && segs[0] == "assumed-role" && len(segs) == 3:
		c.Role, c.Session = segs[1], segs[2]
		c.ARN = "arn:" + a.Partition + ":iam::" + a.AccountID + ":role/" + c.Role
	case a.Service == "sts" && segs[0] == "federated-user" && len(segs) == 2:
		c.User = last
	case a.Service == "iam" && segs[0] == "user" && len(segs) >= 2:
		c.User = last
	case a.Service == "iam" && segs[0] == "role" && len(segs) >= 2:
		c.Role = last
	case a.Service == "iam" && a.Resource == "root":
		c.User = "root"
	default:
		return Caller{}, errors.New("caller ARN is not a user, role or assumed-role session")
	}
	return c, nil
}

// Principal builds the principal: ID is the canonical ARN; the claims are
// what policies read as input.principal.claims.{arn,account,role|user,session}.
func (c Caller) Principal(provider, issuer, subject, mode string, expires time.Time) *identity.Principal {
	claims := map[string]any{
		"arn":        c.ARN,
		"caller_arn": c.CallerARN,
		"account":    c.Account,
		"mode":       mode,
	}
	if c.Role != "" {
		claims["role"] = c.Role
	}
	if c.User != "" {
		claims["user"] = c.User
	}
	if c.Session != "" {
		claims["session"] = c.Session
	}
	if c.UserID != "" {
		claims["user_id"] = c.UserID
	}
	return &identity.Principal{
		ID:        c.ARN,
		Provider:  provider,
		Issuer:    issuer,
		Subject:   subject,
		Type:      PrincipalType,
		Claims:    claims,
		ExpiresAt: expires,
	}
}

// matchAny reports whether the canonical or the reported ARN matches one
// of the patterns.
func matchAny(patterns []string, c Caller) bool {
	for _, p := range patterns {
		if globMatch(p, c.ARN) || (c.CallerARN != c.ARN && globMatch(p, c.CallerARN)) {
			return true
		}
	}
	return false
}

// globMatch matches s against pattern, where '*' matches any run of bytes
// (including '/' and ':') and every other byte matches itself. Linear in
// practice: it backtracks only to the last star.
func globMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
