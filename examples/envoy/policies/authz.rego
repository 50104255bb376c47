# Envoy ext_authz policy, written for the OPA-Envoy plugin's input and
# result shapes: it runs unchanged there and on authzd. On authzd,
# input.principal is also set when the request carried a credential that
# an identity provider verified (an API key in x-api-key, a JWT in
# authorization: Bearer).
package envoy.authz

import input.attributes.request.http

default allow := {
	"allowed": false,
	"http_status": 403,
	"body": "forbidden by policy\n",
	"headers": {"x-authzd-reason": "no rule allows this request"},
}

allow := {"allowed": true, "headers": {"x-authzd-rule": rule}} if {
	rules := sort([r | some r in permitted])
	count(rules) > 0
	rule := rules[0]
}

# Health checks are public.
permitted contains "public-health" if {
	http.method == "GET"
	input.parsed_path == ["healthz"]
}

# Any verified principal may read orders.
permitted contains "read-orders" if {
	http.method == "GET"
	input.parsed_path[0] == "orders"
	input.principal.id != ""
}

# Creating an order needs the orders:write scope and a sane quantity.
permitted contains "create-order" if {
	http.method == "POST"
	input.parsed_path == ["orders"]
	"orders:write" in input.principal.scopes
	input.parsed_body.quantity <= 100
}

# The admin API is for members of the admin group.
permitted contains "admin" if {
	input.parsed_path[0] == "admin"
	"admin" in input.principal.groups
}
