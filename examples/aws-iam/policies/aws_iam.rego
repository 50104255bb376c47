# AWS IAM example: grant actions by role (or user) ARN.
#
# input.principal for an AWS caller (STS proof or direct SigV4):
#   id:     the canonical ARN, e.g. arn:aws:iam::123456789012:role/orders-api
#           (an assumed-role session is canonicalised to its role)
#   type:   "aws_iam"
#   claims: {arn, account, role | user, session, caller_arn, user_id, mode}
#
# The native decision query is data.authzd.decision:
#   {"allow": bool, "reasons": [string]}
package authzd

import rego.v1

default decision := {"allow": false, "reasons": ["no AWS IAM grant covers this action"]}

decision := {"allow": false, "reasons": ["anonymous requests are denied"]} if not input.principal

decision := {"allow": false, "reasons": ["only AWS IAM principals are accepted"]} if {
	input.principal
	input.principal.type != "aws_iam"
}

decision := {"allow": true, "reasons": sort(grants)} if {
	input.principal.type == "aws_iam"
	count(grants) > 0
}

# Grants keyed by the canonical ARN: every session of a role gets them.
grants contains sprintf("%s grants %s", [input.principal.id, input.action]) if {
	input.action in data.aws_iam.arn_grants[input.principal.id]
}

# Grants to every principal of a trusted account, by action.
grants contains sprintf("account %s grants %s", [input.principal.claims.account, input.action]) if {
	input.action in data.aws_iam.account_grants[input.principal.claims.account]
}

# A role session may change only what it created: the session name
# (e.g. an EC2 instance id) is recorded as the resource's creator.
grants contains sprintf("session %s created %s/%s", [input.principal.claims.session, input.resource.type, input.resource.id]) if {
	input.principal.claims.session
	input.resource.attributes.created_by_session == input.principal.claims.session
	input.resource.attributes.created_by_role == input.principal.id
	input.action in data.aws_iam.creator_actions
}
