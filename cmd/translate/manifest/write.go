package manifest

import (
	"bytes"
	"encoding/json"

	"github.com/smi-operator/smi-operator/internal/objectjson"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// Write appends objs to w as a YAML stream ("---" before each document), each as the operator
// applies it (objectjson.Unstructured).
func Write(w *bytes.Buffer, objs []client.Object) error {
	for _, obj := range objs {
		u, err := objectjson.Unstructured(obj)
		if err != nil {
			return err
		}
		data, err := json.Marshal(u.Object)
		if err != nil {
			return err
		}
		y, err := yaml.JSONToYAML(data)
		if err != nil {
			return err
		}
		w.WriteString("---\n")
		w.Write(y)
	}
	return nil
}
