package envoy.authz_test

import data.envoy.authz

get(path) := {"attributes": {"request": {"http": {"method": "GET", "path": path}}}}

test_health_is_public if {
	authz.allow.allowed with input as object.union(get("/healthz"), {"parsed_path": ["healthz"]})
}

test_orders_need_a_principal if {
	not authz.allow.allowed with input as object.union(get("/orders/1"), {"parsed_path": ["orders", "1"]})
	authz.allow.allowed with input as object.union(get("/orders/1"), {"parsed_path": ["orders", "1"], "principal": {"id": "alice"}})
}

test_create_needs_scope_and_quantity if {
	post := {"attributes": {"request": {"http": {"method": "POST", "path": "/orders"}}}, "parsed_path": ["orders"]}
	authz.allow.allowed with input as object.union(post, {"principal": {"id": "a", "scopes": ["orders:write"]}, "parsed_body": {"quantity": 5}})
	not authz.allow.allowed with input as object.union(post, {"principal": {"id": "a", "scopes": ["orders:write"]}, "parsed_body": {"quantity": 500}})
	not authz.allow.allowed with input as object.union(post, {"principal": {"id": "a", "scopes": []}, "parsed_body": {"quantity": 5}})
}

test_deny_has_status_and_body if {
	d := authz.allow with input as object.union(get("/admin"), {"parsed_path": ["admin"]})
	d.http_status == 403
	d.body == "forbidden by policy\n"
}
