package golden

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

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
