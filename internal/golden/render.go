package golden

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/cmd/translate/manifest"
	"github.com/smi-operator/smi-operator/translators/mesh"
)

// WriteObjects appends objs to b as YAML documents, each after a "---" line and as the operator
// applies it (manifest.Write), so that a golden file can be applied as it is.
func WriteObjects(t *testing.T, b *strings.Builder, objs []client.Object) {
	t.Helper()
	var buf bytes.Buffer
	if err := manifest.Write(&buf, objs); err != nil {
		t.Fatal(err)
	}
	b.Write(buf.Bytes())
}

// CheckOutput asserts what holds of any translator's output: every diagnostic has a message and
// turns Programmed False, and they are sorted and unique; objects come kind by kind, each kind
// sorted by namespace and name, none twice, each with CheckMeta's metadata. each, when not nil,
// gets every object with its id "<Kind> <namespace>/<name>" for the translator's own checks.
func CheckOutput(t *testing.T, objs []client.Object, diags []mesh.Diagnostic, each func(id string, obj client.Object)) {
	t.Helper()
	for _, d := range diags {
		if strings.TrimSpace(d.Message) == "" || d.Condition != smi.ConditionProgrammed {
			t.Errorf("diagnostic %v: want a message and condition %s", d, smi.ConditionProgrammed)
		}
	}
	if !slices.Equal(diags, mesh.SortDiagnostics(diags)) {
		t.Errorf("diagnostics are not sorted and unique")
	}
	kinds := map[string]bool{}
	prev := [3]string{}
	for _, obj := range objs {
		key := [3]string{obj.GetObjectKind().GroupVersionKind().Kind, obj.GetNamespace(), obj.GetName()}
		id := fmt.Sprintf("%s %s/%s", key[0], key[1], key[2])
		switch {
		case key[0] != prev[0] && kinds[key[0]]:
			t.Errorf("%s: its kind does not come in one block", id)
		case key[0] == prev[0] && cmp.Or(strings.Compare(key[1], prev[1]), strings.Compare(key[2], prev[2])) <= 0:
			t.Errorf("%s: generated twice, or not sorted by namespace/name", id)
		}
		kinds[key[0]], prev = true, key
		CheckMeta(t, id, obj)
		if each != nil {
			each(id, obj)
		}
	}
}

// CheckMeta asserts what every object a translator generates must have, whatever the backend:
// apiVersion and kind, a namespace, a DNS-1123 name of at most smi.MaxNameLength characters, the
// managed-by and source labels (valid labels), and no owner reference (the controller's job).
func CheckMeta(t *testing.T, id string, obj client.Object) {
	t.Helper()
	gvk := obj.GetObjectKind().GroupVersionKind()
	if gvk.Group == "" || gvk.Version == "" || gvk.Kind == "" {
		t.Errorf("%s: apiVersion/kind not set: %v", id, gvk)
	}
	if obj.GetNamespace() == "" {
		t.Errorf("%s: no namespace", id)
	}
	if msgs := validation.IsDNS1123Subdomain(obj.GetName()); len(msgs) > 0 || len(obj.GetName()) > smi.MaxNameLength {
		t.Errorf("%s: name is not a DNS-1123 name of at most %d characters: %v", id, smi.MaxNameLength, msgs)
	}
	labels := obj.GetLabels()
	if labels[smi.LabelManagedBy] != smi.ManagedByValue || labels[smi.LabelSourceKind] == "" || labels[smi.LabelSourceName] == "" {
		t.Errorf("%s: labels %v lack the managed-by or source labels", id, labels)
	}
	for k, v := range labels {
		if msgs := append(validation.IsQualifiedName(k), validation.IsValidLabelValue(v)...); len(msgs) > 0 {
			t.Errorf("%s: label %s=%s: %v", id, k, v, msgs)
		}
	}
	if len(obj.GetOwnerReferences()) > 0 {
		t.Errorf("%s: owner references are the controller's job", id)
	}
}

// WriteDiagnostics appends the diagnostics of one step (mesh.Build, a translator) to b as a
// comment block: what the SMI objects' conditions would say.
func WriteDiagnostics(b *strings.Builder, step string, diags []mesh.Diagnostic) {
	fmt.Fprintf(b, "# %s diagnostics:\n", step)
	if len(diags) == 0 {
		b.WriteString("#   none\n")
	}
	for _, d := range diags {
		fmt.Fprintf(b, "#   %s\n", d)
	}
}
