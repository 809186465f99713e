package mesh

import (
	"testing"
)

func TestSettingsDefaults(t *testing.T) {
	got := Settings{}.withDefaults()
	want := Settings{TrustDomain: "cluster.local", ClusterDomain: "cluster.local", Access: AccessEnforcing, AccessNamespaces: DefaultAccessNamespaces}
	if got != want {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	set := Settings{TrustDomain: "corp.example", ClusterDomain: "k8s.example", Access: AccessPermissive, MTLS: true, AccessNamespaces: "team=a"}
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
		{"access namespaces selector", Settings{AccessNamespaces: "team in (a,b),!legacy"}, false},
		{"access namespaces that do not parse", Settings{AccessNamespaces: "team in a"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.settings.Validate(); (err != nil) != tc.wantErr {
				t.Errorf("Validate() = %v, want error %v", err, tc.wantErr)
			}
		})
	}
}

func TestSettingsEnforcesIn(t *testing.T) {
	for _, tc := range []struct {
		name      string
		settings  Settings
		namespace map[string]string
		want      bool
	}{
		{"default selects an application namespace", Settings{}, NamespaceLabels("shop"), true},
		{"default leaves kube-system out", Settings{}, NamespaceLabels("kube-system"), false},
		{"default leaves Istio's root namespace out", Settings{}, NamespaceLabels("istio-system"), false},
		{"permissive enforces nowhere", Settings{Access: AccessPermissive}, NamespaceLabels("shop"), false},
		{"selector matches", Settings{AccessNamespaces: "smi=on"}, map[string]string{"smi": "on"}, true},
		{"selector does not match", Settings{AccessNamespaces: "smi=on"}, NamespaceLabels("shop"), false},
		{"every namespace, kube-system too", Settings{AccessNamespaces: EveryNamespace}, NamespaceLabels("kube-system"), true},
		// Validate refuses it; should it slip past, deny-by-default must not open up.
		{"a selector that does not parse fails closed", Settings{AccessNamespaces: "smi in on"}, NamespaceLabels("shop"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.settings.EnforcesIn(tc.namespace); got != tc.want {
				t.Errorf("EnforcesIn(%v) = %v, want %v", tc.namespace, got, tc.want)
			}
		})
	}
}

func TestSettingsUnenforced(t *testing.T) {
	// Nothing is denied, but workloads keep mutual TLS: their clients in enforced namespaces talk
	// it to them.
	want := Settings{AccessNamespaces: "smi=on", Access: AccessPermissive, MTLS: true}
	if got := (Settings{AccessNamespaces: "smi=on"}).Unenforced(); got != want {
		t.Errorf("Unenforced() = %+v, want %+v", got, want)
	}
	permissive := Settings{Access: AccessPermissive}
	if got := permissive.Unenforced(); got != permissive {
		t.Errorf("permissive mode: %+v, want the settings unchanged (no mutual TLS forced)", got)
	}
}
