package manifest

import (
	"bytes"
	"encoding/json"

	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// Write appends objs to w as a YAML stream ("---" before each document), each as the operator
// applies it (controllers/owned): its JSON without status and the metadata the server owns.
func Write(w *bytes.Buffer, objs []client.Object) error {
	for _, obj := range objs {
		data, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		var u map[string]any
		if err := utiljson.Unmarshal(data, &u); err != nil {
			return err
		}
		delete(u, "status")
		if meta, ok := u["metadata"].(map[string]any); ok {
			for _, f := range []string{"creationTimestamp", "resourceVersion", "managedFields"} {
				delete(meta, f)
			}
		}
		if data, err = json.Marshal(u); err != nil {
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
