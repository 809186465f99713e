// Package objectlist holds what the translators that write Kubernetes objects (istio, gamma,
// linkerd) do alike with their typed lists of objects.
package objectlist

import (
	"cmp"
	"slices"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Append appends objs to out as client.Objects: an Output's Objects, kind by kind.
func Append[T client.Object](out []client.Object, objs []T) []client.Object {
	for _, o := range objs {
		out = append(out, o)
	}
	return out
}

// Sort sorts objs by namespace, then name: the order every translator's output lists are in.
func Sort[T client.Object](objs []T) {
	slices.SortFunc(objs, func(a, b T) int {
		return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
	})
}
