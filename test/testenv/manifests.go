package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/cmd/translate/manifest"
)

// CreateManifests creates in namespace every object of the YAML files (*.yaml) of dir, a path
// relative to the repository root: a translate test case, so that the cluster is given the very
// input whose findings translate's golden file shows. It returns the error of each create the
// API server refused, by object name; err is about reading the files.
func CreateManifests(ctx context.Context, c client.Client, dir, namespace string) (refused map[string]error, err error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(root, dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no manifests in %s: %v", dir, err)
	}
	refused = map[string]error{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, doc := range manifest.Split(data) {
			if doc.Err != nil {
				return nil, fmt.Errorf("%s document %d: %w", f, doc.Index, doc.Err)
			}
			if doc.JSON == nil {
				continue
			}
			obj := &unstructured.Unstructured{}
			if err := obj.UnmarshalJSON(doc.JSON); err != nil {
				return nil, fmt.Errorf("%s document %d: %w", f, doc.Index, err)
			}
			obj.SetNamespace(namespace)
			if err := c.Create(ctx, obj); err != nil {
				refused[obj.GetName()] = err
			}
		}
	}
	return refused, nil
}
