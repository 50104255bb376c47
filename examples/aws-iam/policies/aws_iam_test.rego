package authzd_test

import rego.v1

import data.authzd

orders_session := {
	"id": "arn:aws:iam::123456789012:role/orders-api",
	"provider": "aws-iam-sts",
	"type": "aws_iam",
	"groups": [],
	"scopes": [],
	"claims": {
		"arn": "arn:aws:iam::123456789012:role/orders-api",
		"caller_arn": "arn:aws:sts::123456789012:assumed-role/orders-api/i-0abc",
		"account": "123456789012",
		"role": "orders-api",
		"session": "i-0abc",
		"mode": "sts",
	},
}

alice := {
	"id": "arn:aws:iam::123456789012:user/engineering/alice",
	"provider": "aws-iam-sigv4",
	"type": "aws_iam",
	"groups": [],
	"scopes": [],
	"claims": {"arn": "arn:aws:iam::123456789012:user/engineering/alice", "account": "123456789012", "user": "alice", "mode": "sigv4"},
}

order(attrs) := {"type": "order", "id": "o-1", "attributes": attrs}

test_role_grants_by_arn if {
	d := authzd.decision with input as {"principal": orders_session, "action": "orders:create", "resource": order({})}
	d.allow
	d.reasons == ["arn:aws:iam::123456789012:role/orders-api grants orders:create"]
}

test_role_without_grant_denied if {
	d := authzd.decision with input as {"principal": orders_session, "action": "invoices:read", "resource": order({})}
	not d.allow
	d.reasons == ["no AWS IAM grant covers this action"]
}

test_user_grants_by_arn if {
	authzd.decision.allow with input as {"principal": alice, "action": "orders:read", "resource": order({})}
	not authzd.decision.allow with input as {"principal": alice, "action": "orders:create", "resource": order({})}
}

test_other_account_denied if {
	other := object.union(orders_session, {
		"id": "arn:aws:iam::999999999999:role/orders-api",
		"claims": object.union(orders_session.claims, {"account": "999999999999", "arn": "arn:aws:iam::999999999999:role/orders-api"}),
	})
	not authzd.decision.allow with input as {"principal": other, "action": "orders:create", "resource": order({})}
	not authzd.decision.allow with input as {"principal": other, "action": "health:read", "resource": order({})}
}

test_account_grant if {
	authzd.decision.allow with input as {"principal": alice, "action": "health:read", "resource": {"type": "service", "id": "orders", "attributes": {}}}
}

test_session_may_update_what_it_created if {
	authzd.decision.allow with input as {"principal": orders_session, "action": "orders:cancel", "resource": order({"created_by_session": "i-0abc", "created_by_role": "arn:aws:iam::123456789012:role/orders-api"})}
}

test_other_session_may_not_update if {
	not authzd.decision.allow with input as {"principal": orders_session, "action": "orders:cancel", "resource": order({"created_by_session": "i-0def", "created_by_role": "arn:aws:iam::123456789012:role/orders-api"})}
}

test_same_session_name_other_role_may_not_update if {
	not authzd.decision.allow with input as {"principal": orders_session, "action": "orders:cancel", "resource": order({"created_by_session": "i-0abc", "created_by_role": "arn:aws:iam::123456789012:role/billing"})}
}

test_non_aws_principal_denied if {
	p := {"id": "demo-app", "provider": "apikey", "type": "api_key", "groups": [], "scopes": ["admin"], "claims": {}}
	d := authzd.decision with input as {"principal": p, "action": "orders:read", "resource": order({})}
	not d.allow
	d.reasons == ["only AWS IAM principals are accepted"]
}

test_anonymous_denied if {
	d := authzd.decision with input as {"action": "orders:read", "resource": order({})}
	not d.allow
	d.reasons == ["anonymous requests are denied"]
}
