package trafficsplit

import (
	"testing"

	splitv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/split/v1alpha4"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/smi-operator/smi-operator/apis/smi/hub"
)

// TestApexChangedPassesOnlyWhatMovesAnApex: the rivals of a split are reconciled when it comes,
// goes or names another apex, not when its weights change (the oldest wins whatever they are).
func TestApexChangedPassesOnlyWhatMovesAnApex(t *testing.T) {
	split := func(apex string, weight int) *hub.TrafficSplit {
		return &hub.TrafficSplit{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
			Spec: splitv1alpha4.TrafficSplitSpec{Service: apex, Backends: []splitv1alpha4.TrafficSplitBackend{{Service: "web-v1", Weight: weight}}}}
	}
	for _, tc := range []struct {
		name string
		got  bool
		want bool
	}{
		{"created", apexChanged.Create(event.CreateEvent{Object: split("web", 1)}), true},
		{"deleted", apexChanged.Delete(event.DeleteEvent{Object: split("web", 1)}), true},
		{"weights changed", apexChanged.Update(event.UpdateEvent{ObjectOld: split("web", 1), ObjectNew: split("web", 2)}), false},
		{"moved to another apex", apexChanged.Update(event.UpdateEvent{ObjectOld: split("web", 1), ObjectNew: split("api", 1)}), true},
		// A Service of another namespace, or of another cluster domain, is no apex (package mesh):
		// the split leaves its apex, as it does by moving.
		{"moved to another namespace's Service", apexChanged.Update(event.UpdateEvent{ObjectOld: split("web", 1), ObjectNew: split("web.other", 1)}), true},
		{"moved to another cluster domain", apexChanged.Update(event.UpdateEvent{ObjectOld: split("web", 1), ObjectNew: split("web.shop.svc.example.org", 1)}), true},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: apexChanged = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}
