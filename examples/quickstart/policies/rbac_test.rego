package authzd_test

import rego.v1

import data.authzd

reader := {"id": "demo-app", "provider": "apikey", "type": "api_key", "scopes": ["read"], "groups": []}

test_reader_may_read if {
	authzd.decision.allow with input as {"principal": reader, "action": "documents:read", "resource": {"type": "document", "id": "1", "attributes": {}}}
}

test_reader_may_not_delete if {
	d := authzd.decision with input as {"principal": reader, "action": "documents:delete", "resource": {"type": "document", "id": "1", "attributes": {}}}
	not d.allow
	d.reasons == ["no role or ownership grants this action"]
}

test_groups_are_roles if {
	p := object.union(reader, {"scopes": [], "groups": ["admin"]})
	authzd.decision.allow with input as {"principal": p, "action": "documents:delete", "resource": {"type": "document", "id": "1", "attributes": {}}}
}

test_owner_may_delete_own_document if {
	authzd.decision.allow with input as {"principal": reader, "action": "documents:delete", "resource": {"type": "document", "id": "1", "attributes": {"owner": "demo-app"}}}
}

test_owner_of_other_document_may_not_delete if {
	not authzd.decision.allow with input as {"principal": reader, "action": "documents:delete", "resource": {"type": "document", "id": "1", "attributes": {"owner": "someone-else"}}}
}

test_anonymous_denied if {
	d := authzd.decision with input as {"action": "documents:read", "resource": {"type": "document", "id": "1", "attributes": {}}}
	not d.allow
	d.reasons == ["anonymous requests are denied"]
}
