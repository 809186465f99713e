package validate_test

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/smi-operator/smi-operator/xds/validate"
)

// TestDeepLooksInsideAnys: a listener whose own fields are valid fails when the filter packed in
// it does not (an HTTP connection manager without its required stat_prefix), or when it packs a
// type no client knows; ValidateAll alone passes both.
func TestDeepLooksInsideAnys(t *testing.T) {
	listener := func(config *anypb.Any) *listenerv3.Listener {
		return &listenerv3.Listener{
			Name: "l",
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 80},
			}}},
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
				Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: config},
			}}}},
		}
	}
	valid, err := anypb.New(&hcmv3.HttpConnectionManager{StatPrefix: "in", RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{
		Rds: &hcmv3.Rds{RouteConfigName: "r", ConfigSource: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Deep(listener(valid)); err != nil {
		t.Fatalf("a valid listener: %v", err)
	}
	noStatPrefix, _ := anypb.New(&hcmv3.HttpConnectionManager{})
	unknown := &anypb.Any{TypeUrl: "type.googleapis.com/example.Unknown"}
	for name, tc := range map[string]struct {
		config *anypb.Any
		want   string
	}{
		"invalid packed filter": {noStatPrefix, "StatPrefix"},
		"unknown packed type":   {unknown, "example.Unknown"},
	} {
		l := listener(tc.config)
		if err := l.ValidateAll(); err != nil {
			t.Fatalf("%s: ValidateAll alone already fails (%v): the case shows nothing", name, err)
		}
		if err := validate.Deep(l); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Deep = %v, want an error naming %s", name, err, tc.want)
		}
	}
}
