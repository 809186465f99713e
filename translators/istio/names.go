package istio

import (
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// uniqueNames names each item by joining its parts with "-", shortened. Readable joined names can
// collide across sources ("a"+"b-c" and "a-b"+"c"): every item of a colliding group then gets a
// hash of its parts (unambiguous, unlike the joined name), whatever order the items came in.
func uniqueNames[T client.Object](items []named[T]) []string {
	names := make([]string, len(items))
	seen := map[[2]string]int{}
	for i, it := range items {
		names[i] = smi.ShortName(strings.Join(it.parts, "-"))
		seen[[2]string{it.obj.GetNamespace(), names[i]}]++
	}
	for i, it := range items {
		if seen[[2]string{it.obj.GetNamespace(), names[i]}] > 1 {
			names[i] = smi.HashedName(strings.Join(it.parts, "-"), strings.Join(it.parts, "\x00"))
		}
	}
	return names
}
