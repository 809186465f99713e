package conversion

import (
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// convertedWith finishes a typed conversion: out, whose metadata is a copy of the source object's,
// gets its conversion annotation updated by update (see updateConversionData).
func convertedWith[O metav1.Object, D any](out O, update func(data *D)) (O, error) {
	if err := updateConversionData(out, update); err != nil {
		var none O
		return none, err
	}
	return out, nil
}

// updateConversionData decodes obj's conversion annotation into a D, lets update take from it what
// the converted object can hold again and add what it cannot hold, and writes the result back: as
// JSON, or not at all when nothing is left. Other annotations are left alone.
//
// An annotation that does not decode counts as empty rather than as an error: it only holds copies
// of fields, and refusing to convert would make the object unreadable in every other version (and
// a list of its kind with it).
func updateConversionData[D any](obj metav1.Object, update func(data *D)) error {
	annotations := obj.GetAnnotations()
	data, _ := conversionData[D](obj)
	update(&data)
	encoded, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("cannot encode the %s annotation: %w", smi.ConversionDataAnnotation, err)
	}
	if string(encoded) != "{}" {
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[smi.ConversionDataAnnotation] = string(encoded)
		obj.SetAnnotations(annotations)
		return nil
	}
	if _, ok := annotations[smi.ConversionDataAnnotation]; ok {
		delete(annotations, smi.ConversionDataAnnotation)
		if len(annotations) == 0 {
			annotations = nil
		}
		obj.SetAnnotations(annotations)
	}
	return nil
}

// conversionData decodes obj's conversion annotation into a D: the zero D when there is none, and
// also, with the error, when it does not decode.
func conversionData[D any](obj metav1.Object) (D, error) {
	var data D
	saved, ok := obj.GetAnnotations()[smi.ConversionDataAnnotation]
	if !ok {
		return data, nil
	}
	if err := json.Unmarshal([]byte(saved), &data); err != nil {
		var empty D
		return empty, fmt.Errorf("the %s annotation does not decode: %w", smi.ConversionDataAnnotation, err)
	}
	return data, nil
}

// matchSaved pairs the items of a list with the entries saved for them, for data kept per item (an
// access subject's port, a match's headers). rules says when an entry belongs to an item, from the
// strictest (same place, same item) to the loosest; every rule in turn gives each item that has no
// entry yet the first unused entry it accepts, so each entry goes to one item at most and items
// that look the same get theirs back in order. It returns, for each item, the index of its entry
// or -1.
func matchSaved(items, entries int, rules ...func(item, entry int) bool) []int {
	matched := make([]int, items)
	for i := range matched {
		matched[i] = -1
	}
	used := make([]bool, entries)
	for _, belongs := range rules {
		for item := range matched {
			for entry := range used {
				if matched[item] < 0 && !used[entry] && belongs(item, entry) {
					matched[item], used[entry] = entry, true
				}
			}
		}
	}
	return matched
}
