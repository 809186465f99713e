package mesh

import (
	"testing"
)

func TestSettingsDefaults(t *testing.T) {
	got := Settings{}.withDefaults()
	want := Settings{TrustDomain: "cluster.local", ClusterDomain: "cluster.local", Access: AccessEnforcing}
	if got != want {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	set := Settings{TrustDomain: "corp.example", ClusterDomain: "k8s.example", Access: AccessPermissive, MTLS: true}
	if got := set.withDefaults(); got != set {
		t.Errorf("withDefaults changed explicit settings: %+v, want %+v", got, set)
	}
}

func TestSettingsEnforcing(t *testing.T) {
	for _, tc := range []struct {
		access AccessMode
		want   bool
	}{
		{"", true},
		{AccessEnforcing, true},
		{AccessPermissive, false},
		// A mode that slipped past Validate must fail closed.
		{"permissive", true},
		{"Open", true},
	} {
		if got := (Settings{Access: tc.access}).Enforcing(); got != tc.want {
			t.Errorf("Settings{Access: %q}.Enforcing() = %v, want %v", tc.access, got, tc.want)
		}
	}
}

func TestSettingsValidate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings Settings
		wantErr  bool
	}{
		{"zero value is the defaults", Settings{}, false},
		{"everything set", Settings{TrustDomain: "corp_1.example-x", ClusterDomain: "k8s.example", Access: AccessPermissive, MTLS: true}, false},
		{"unknown access mode", Settings{Access: "Open"}, true},
		{"access mode is case-sensitive", Settings{Access: "permissive"}, true},
		{"trust domain with a scheme", Settings{TrustDomain: "spiffe://corp.example"}, true},
		{"upper-case trust domain", Settings{TrustDomain: "Corp.Example"}, true},
		{"cluster domain that is not DNS", Settings{ClusterDomain: "cluster_local"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.settings.Validate(); (err != nil) != tc.wantErr {
				t.Errorf("Validate() = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}
