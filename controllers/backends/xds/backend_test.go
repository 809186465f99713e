package xds

import (
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smi-operator/smi-operator/apis/v1alpha1"
)

// TestRetireDrainsOnlyAServerThatAnswered: a server retired before it ever became active (it was
// still being brought up when the other backend was asked for again) never answered a proxy, so
// it has no configuration to drain: it stops at once rather than hold its port and its proxies'
// streams for the grace period. One that was active drains for the spec's grace period.
func TestRetireDrainsOnlyAServerThatAnswered(t *testing.T) {
	spec := v1alpha1.SMIOperatorSpec{XDS: v1alpha1.XDSSpec{SwapGracePeriod: &metav1.Duration{Duration: time.Hour}}}
	for _, wasActive := range []bool{false, true} {
		i := &instance{log: logr.Discard()}
		i.active.Store(wasActive)
		until := i.Retire(spec)
		if drains := !until.IsZero(); drains != wasActive {
			t.Errorf("server active before: %v; drains until %v", wasActive, until)
		}
		if wasActive && (until.Before(time.Now().Add(59*time.Minute)) || until.After(time.Now().Add(time.Hour))) {
			t.Errorf("drains until %v, want the spec's hour from now", until)
		}
	}
}
