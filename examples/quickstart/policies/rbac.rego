# Quickstart policy: role-based access from the principal's scopes and
# groups, plus ownership of a resource by principal.id.
#
# The native decision query is data.authzd.decision. It returns an object:
#   {"allow": bool, "reasons": [string]}
package authzd

import rego.v1

default decision := {"allow": false, "reasons": ["no role or ownership grants this action"]}

decision := {"allow": false, "reasons": ["anonymous requests are denied"]} if not input.principal

decision := {"allow": true, "reasons": sort(grants)} if {
	input.principal
	count(grants) > 0
}

# A principal's roles are its scopes and its groups.
roles contains r if some r in input.principal.scopes

roles contains r if some r in input.principal.groups

grants contains sprintf("role %s grants %s", [r, input.action]) if {
	some r in roles
	input.action in data.rbac.roles[r]
}

grants contains sprintf("owner of %s/%s", [input.resource.type, input.resource.id]) if {
	input.resource.attributes.owner == input.principal.id
	input.action in data.rbac.owner_actions
}
