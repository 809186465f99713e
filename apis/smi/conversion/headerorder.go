package conversion

import (
	"encoding/json"
	"slices"

	"github.com/smi-operator/smi-operator/apis/smi"
)

// The SDK holds a match's headers in a Go map, so the typed conversions cannot keep the order in
// which the user listed them. All headers must match, so the order carries no meaning, but a
// round trip must still give back what was written (GitOps tools compare it). Convert therefore
// reads the order from the source object's JSON, or from the conversion annotation when the source
// is v1alpha1 (which has no headers), and lists the headers of the same match in that order.

// headerOrders maps each match name of an HTTPRouteGroup in JSON form to its header names, in order.
func headerOrders(obj map[string]any) map[string][]string {
	orders := map[string][]string{}
	for _, match := range httpMatches(obj) {
		name, _ := match["name"].(string)
		list, _ := match["headers"].([]any)
		for _, entry := range list {
			if entry, ok := entry.(map[string]any); ok {
				for header := range entry { // a single-entry map
					orders[name] = append(orders[name], header)
				}
			}
		}
	}
	var saved httpRouteGroupData
	if data, ok := conversionAnnotation(obj); ok && json.Unmarshal([]byte(data), &saved) == nil {
		for _, entry := range saved.Headers {
			if len(entry.Order) > 0 {
				orders[entry.Match.Name] = entry.Order
			}
		}
	}
	return orders
}

// applyHeaderOrders lists the headers of each match of obj (already sorted by name) in the order
// orders gives for its name, headers it does not name last; and records that order in the
// conversion annotation's saved headers, for a version that has none.
func applyHeaderOrders(obj map[string]any, orders map[string][]string) {
	position := func(name, header string) int {
		if i := slices.Index(orders[name], header); i >= 0 {
			return i
		}
		return len(orders[name])
	}
	for _, match := range httpMatches(obj) {
		name, _ := match["name"].(string)
		if list, ok := match["headers"].([]any); ok {
			slices.SortStableFunc(list, func(a, b any) int {
				return position(name, singleKey(a)) - position(name, singleKey(b))
			})
		}
	}
	data, ok := conversionAnnotation(obj)
	var saved httpRouteGroupData
	if !ok || json.Unmarshal([]byte(data), &saved) != nil || len(saved.Headers) == 0 {
		return
	}
	for i, entry := range saved.Headers {
		saved.Headers[i].Order = slices.DeleteFunc(slices.Clone(orders[entry.Match.Name]), func(h string) bool {
			_, has := entry.Headers[h]
			return !has
		})
	}
	if encoded, err := json.Marshal(saved); err == nil {
		setConversionAnnotation(obj, string(encoded), true)
	}
}

// httpMatches returns the matches of an HTTPRouteGroup in JSON form: under spec from v1alpha3 on,
// at the top level before.
func httpMatches(obj map[string]any) []map[string]any {
	list, _ := obj["matches"].([]any)
	if spec, ok := obj["spec"].(map[string]any); ok {
		list, _ = spec["matches"].([]any)
	}
	var matches []map[string]any
	for _, m := range list {
		if m, ok := m.(map[string]any); ok {
			matches = append(matches, m)
		}
	}
	return matches
}

func conversionAnnotation(obj map[string]any) (string, bool) {
	meta, _ := obj["metadata"].(map[string]any)
	annotations, _ := meta["annotations"].(map[string]any)
	value, ok := annotations[smi.ConversionDataAnnotation].(string)
	return value, ok
}

func singleKey(entry any) string {
	for key := range entry.(map[string]any) {
		return key
	}
	return ""
}
