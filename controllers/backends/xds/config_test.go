package xds

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
)

func TestConfigFrom(t *testing.T) {
	base := Config{ServiceName: "smi-operator-xds", CASecret: types.NamespacedName{Namespace: "ops", Name: "xds-ca"}, CARootTTL: 48 * time.Hour}
	dur := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
	for _, tc := range []struct {
		name string
		in   v1alpha1.SMIOperatorSpec
		want Config
	}{{
		name: "defaults",
		in:   v1alpha1.SMIOperatorSpec{},
		want: Config{Address: "10.0.0.1:15010", ServiceName: "smi-operator-xds", CASecret: base.CASecret, CARootTTL: base.CARootTTL,
			TokenAudiences: []string{"smi-operator-xds"}, CertTTL: time.Hour},
	}, {
		name: "everything set",
		in: v1alpha1.SMIOperatorSpec{XDS: v1alpha1.XDSSpec{
			Port: 16000, TLS: &v1alpha1.XDSTLS{SecretName: "xds-cert"}, TokenAudiences: []string{"a", "b"},
			CertificateTTL: dur(90 * time.Minute), SwapGracePeriod: dur(0),
		}},
		want: Config{Address: "10.0.0.1:16000", TLSSecretName: "xds-cert", ServiceName: "smi-operator-xds", CASecret: base.CASecret, CARootTTL: base.CARootTTL,
			TokenAudiences: []string{"a", "b"}, CertTTL: 90 * time.Minute},
	}, {
		name: "plain text",
		in:   v1alpha1.SMIOperatorSpec{XDS: v1alpha1.XDSSpec{InsecurePlaintext: true}},
		want: Config{Address: "10.0.0.1:15010", Plaintext: true, ServiceName: "smi-operator-xds", CASecret: base.CASecret, CARootTTL: base.CARootTTL,
			TokenAudiences: []string{"smi-operator-xds"}, CertTTL: time.Hour},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ConfigFrom(tc.in, "10.0.0.1", base)); diff != "" {
				t.Errorf("ConfigFrom() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	// What the flags say and the spec does not (a certificate folder) is not carried over; an
	// empty host listens on every address.
	spec := v1alpha1.SMIOperatorSpec{}
	withDir := base
	withDir.TLSCertDir = "/etc/xds"
	got := ConfigFrom(spec, "", withDir)
	if got.TLSCertDir != "" || got.Address != ":15010" {
		t.Errorf("ConfigFrom(base with a certificate folder, no host) = %+v", got)
	}
}
