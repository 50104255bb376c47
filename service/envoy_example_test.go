package service_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"gopkg.in/yaml.v3"

	"github.com/authzd/authzd/service"
)

// Envoy cannot be installed here, so the example Envoy configurations are
// checked the way Envoy loads them: decoded into the v3 Bootstrap with
// unknown fields rejected, then every message, including those inside
// typed_config, checked against Envoy's own validation rules.
func TestEnvoyExampleConfigsAreValid(t *testing.T) {
	for _, name := range []string{"envoy.yaml", "envoy-http-service.yaml"} {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("..", "examples", "envoy", name))
			if err != nil {
				t.Fatal(err)
			}
			var doc any
			if err := yaml.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			js, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			var b bootstrapv3.Bootstrap
			if err := protojson.Unmarshal(js, &b); err != nil {
				t.Fatalf("not a valid Envoy v3 bootstrap: %v", err)
			}
			validateAll(t, b.ProtoReflect())
		})
	}
}

type allValidator interface{ ValidateAll() error }

func validateAll(t *testing.T, m protoreflect.Message) {
	t.Helper()
	if v, ok := m.Interface().(allValidator); ok {
		if err := v.ValidateAll(); err != nil {
			t.Fatalf("%s: %v", m.Descriptor().FullName(), err)
		}
	}
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			t.Fatalf("typed_config %s: %v", a.GetTypeUrl(), err)
		}
		validateAll(t, inner.ProtoReflect())
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			for i := range v.List().Len() {
				validateAll(t, v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Kind() == protoreflect.MessageKind:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				validateAll(t, mv.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Kind() == protoreflect.MessageKind:
			validateAll(t, v.Message())
		}
		return true
	})
}

func TestEnvoyExampleAuthzdConfigLoads(t *testing.T) {
	cfg, err := service.LoadConfig(filepath.Join("..", "examples", "envoy", "authzd.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Envoy.Query() != "data.envoy.authz.allow" || len(cfg.Envoy.PrincipalHeaders) != 3 {
		t.Fatalf("envoy config %+v", cfg.Envoy)
	}
}
