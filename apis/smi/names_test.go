package smi

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestShortName(t *testing.T) {
	long := strings.Repeat("a", 60) + ".b-c"
	tests := []struct {
		name, in, want string
	}{
		{"short names are kept", "canary-web-v1", "canary-web-v1"},
		{"63 characters are kept", strings.Repeat("x", 63), strings.Repeat("x", 63)},
		{"longer names are cut and hashed", strings.Repeat("x", 64), strings.Repeat("x", 52) + "-" + hashOf(strings.Repeat("x", 64))},
		{"the cut never leaves a separator before the hash", strings.Repeat("a", 51) + ".-rest-of-the-name", strings.Repeat("a", 51) + "-" + hashOf(strings.Repeat("a", 51)+".-rest-of-the-name")},
		{"dots in SMI names survive", long, strings.Repeat("a", 52) + "-" + hashOf(long)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ShortName(tc.in)
			if got != tc.want {
				t.Errorf("ShortName(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if msgs := validation.IsDNS1123Subdomain(got); len(msgs) > 0 || len(got) > MaxNameLength {
				t.Errorf("ShortName(%q) = %q: not a name of at most %d characters: %v", tc.in, got, MaxNameLength, msgs)
			}
			if msgs := validation.IsValidLabelValue(got); len(msgs) > 0 {
				t.Errorf("ShortName(%q) = %q: not a label value: %v", tc.in, got, msgs)
			}
		})
	}
	if ShortName(strings.Repeat("x", 64)) == ShortName(strings.Repeat("x", 65)) {
		t.Error("names that differ after the cut got the same short name")
	}
}

func hashOf(s string) string {
	return HashedName("", s)[1:]
}

func TestParseSplitService(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want SplitService
		ok   bool
	}{
		{"web", SplitService{Name: "web"}, true},
		{"web.shop", SplitService{Name: "web", Namespace: "shop"}, true},
		{"web.shop.svc", SplitService{Name: "web", Namespace: "shop"}, true},
		{"web.shop.svc.cluster.local", SplitService{Name: "web", Namespace: "shop", ClusterDomain: "cluster.local"}, true},
		{"web.shop.svc.corp", SplitService{Name: "web", Namespace: "shop", ClusterDomain: "corp"}, true},
		{"web.shop.pod.cluster.local", SplitService{}, false},
		{"web.shop.example.com", SplitService{}, false},
		{"", SplitService{}, false},
		{"web.", SplitService{}, false},
		{"web..svc", SplitService{}, false},
		{"web.shop.svc.", SplitService{}, false},
		{"web.shop.svc..local", SplitService{}, false},
	} {
		got, ok := ParseSplitService(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseSplitService(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
