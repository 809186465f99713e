package conversion

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	specsv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha1"
	specsv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha2"
	specsv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha3"
	specsv1alpha4 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/specs/v1alpha4"

	"github.com/smi-operator/smi-operator/apis/smi"
)

var (
	httpRouteGroupVersions = []version{
		spoke(specsv1alpha1.SchemeGroupVersion.WithKind(smi.HTTPRouteGroupKind), HTTPRouteGroupV1alpha1ToHub, HTTPRouteGroupHubToV1alpha1),
		spoke(specsv1alpha2.SchemeGroupVersion.WithKind(smi.HTTPRouteGroupKind), HTTPRouteGroupV1alpha2ToHub, HTTPRouteGroupHubToV1alpha2),
		spoke(specsv1alpha3.SchemeGroupVersion.WithKind(smi.HTTPRouteGroupKind), HTTPRouteGroupV1alpha3ToHub, HTTPRouteGroupHubToV1alpha3),
		hub(specsv1alpha4.SchemeGroupVersion.WithKind(smi.HTTPRouteGroupKind)),
	}
	tcpRouteVersions = []version{
		spoke(specsv1alpha1.SchemeGroupVersion.WithKind(smi.TCPRouteKind), TCPRouteV1alpha1ToHub, TCPRouteHubToV1alpha1),
		spoke(specsv1alpha2.SchemeGroupVersion.WithKind(smi.TCPRouteKind), TCPRouteV1alpha2ToHub, TCPRouteHubToV1alpha2),
		spoke(specsv1alpha3.SchemeGroupVersion.WithKind(smi.TCPRouteKind), TCPRouteV1alpha3ToHub, TCPRouteHubToV1alpha3),
		hub(specsv1alpha4.SchemeGroupVersion.WithKind(smi.TCPRouteKind)),
	}
	// UDPRoute exists only in v1alpha4: nothing to convert, but Convert and ToHub accept it.
	udpRouteVersions = []version{
		hub(specsv1alpha4.SchemeGroupVersion.WithKind(smi.UDPRouteKind)),
	}
)

// httpRouteGroupData is what the conversion annotation of an HTTPRouteGroup holds.
type httpRouteGroupData struct {
	// Headers of the hub's matches that have any, kept while the object is served as v1alpha1,
	// which has no headers.
	Headers []matchHeaders `json:"headers,omitempty"`
}

// matchHeaders are the headers of one match, with where it was and how v1alpha1 shows it.
type matchHeaders struct {
	Index   int                     `json:"index"`
	Match   specsv1alpha1.HTTPMatch `json:"match"`
	Headers map[string]string       `json:"headers"`
	// Order lists the header names as the user ordered them; Convert fills it (see headerorder.go).
	Order []string `json:"order,omitempty"`
}

// v1alpha1Match is a hub match without its headers.
func v1alpha1Match(m specsv1alpha4.HTTPMatch) specsv1alpha1.HTTPMatch {
	return specsv1alpha1.HTTPMatch{Name: m.Name, Methods: m.Methods, PathRegex: m.PathRegex}
}

// saveHeaders keeps the headers of the hub's matches.
func (d *httpRouteGroupData) saveHeaders(matches []specsv1alpha4.HTTPMatch) {
	d.Headers = nil
	for i, m := range matches {
		if len(m.Headers) > 0 {
			d.Headers = append(d.Headers, matchHeaders{Index: i, Match: v1alpha1Match(m), Headers: m.Headers})
		}
	}
}

// restoreHeaders gives the saved headers back to their matches, and forgets them. A match gets the
// headers saved for an identical match at the same place, or else at another place (v1alpha1
// reordered the matches), or else for a match of the same name: a match is known by its name
// (TrafficTargets refer to it so), and a v1alpha1 client that edits a match's path must not wipe
// the headers it cannot see, any more than a client may wipe fields it does not know. A renamed or
// removed match loses them.
func (d *httpRouteGroupData) restoreHeaders(matches []specsv1alpha4.HTTPMatch) {
	identical := func(match, entry int) bool {
		saved, m := d.Headers[entry].Match, v1alpha1Match(matches[match])
		return saved.Name == m.Name && saved.PathRegex == m.PathRegex && slices.Equal(saved.Methods, m.Methods)
	}
	matched := matchSaved(len(matches), len(d.Headers),
		func(match, entry int) bool { return d.Headers[entry].Index == match && identical(match, entry) },
		identical,
		func(match, entry int) bool {
			return d.Headers[entry].Match.Name != "" && d.Headers[entry].Match.Name == matches[match].Name
		})
	for i, entry := range matched {
		if entry >= 0 {
			matches[i].Headers = d.Headers[entry].Headers
		}
	}
	d.Headers = nil
}

// HTTPRouteGroupV1alpha1ToHub converts a v1alpha1 HTTPRouteGroup (matches at the top level, no
// headers) to the hub version, giving the matches back the headers the annotation holds for them.
func HTTPRouteGroupV1alpha1ToHub(in *specsv1alpha1.HTTPRouteGroup) (*specsv1alpha4.HTTPRouteGroup, error) {
	in = in.DeepCopy()
	out := &specsv1alpha4.HTTPRouteGroup{
		TypeMeta:   typeMeta(specsv1alpha4.SchemeGroupVersion, smi.HTTPRouteGroupKind),
		ObjectMeta: in.ObjectMeta,
		Spec: specsv1alpha4.HTTPRouteGroupSpec{
			Matches: convertSlice(in.Matches, func(m specsv1alpha1.HTTPMatch) specsv1alpha4.HTTPMatch {
				return specsv1alpha4.HTTPMatch{Name: m.Name, Methods: m.Methods, PathRegex: m.PathRegex}
			}),
		},
	}
	return convertedWith(out, func(d *httpRouteGroupData) { d.restoreHeaders(out.Spec.Matches) })
}

// HTTPRouteGroupHubToV1alpha1 converts a hub HTTPRouteGroup to v1alpha1, keeping the matches'
// headers in the annotation.
func HTTPRouteGroupHubToV1alpha1(in *specsv1alpha4.HTTPRouteGroup) (*specsv1alpha1.HTTPRouteGroup, error) {
	in = in.DeepCopy()
	out := &specsv1alpha1.HTTPRouteGroup{
		TypeMeta:   typeMeta(specsv1alpha1.SchemeGroupVersion, smi.HTTPRouteGroupKind),
		ObjectMeta: in.ObjectMeta,
		Matches:    convertSlice(in.Spec.Matches, v1alpha1Match),
	}
	return convertedWith(out, func(d *httpRouteGroupData) { d.saveHeaders(in.Spec.Matches) })
}

// HTTPRouteGroupV1alpha2ToHub converts a v1alpha2 HTTPRouteGroup (matches at the top level) to the
// hub version.
func HTTPRouteGroupV1alpha2ToHub(in *specsv1alpha2.HTTPRouteGroup) (*specsv1alpha4.HTTPRouteGroup, error) {
	in = in.DeepCopy()
	out := &specsv1alpha4.HTTPRouteGroup{
		TypeMeta:   typeMeta(specsv1alpha4.SchemeGroupVersion, smi.HTTPRouteGroupKind),
		ObjectMeta: in.ObjectMeta,
		Spec: specsv1alpha4.HTTPRouteGroupSpec{
			Matches: convertSlice(in.Matches, func(m specsv1alpha2.HTTPMatch) specsv1alpha4.HTTPMatch {
				return specsv1alpha4.HTTPMatch{Name: m.Name, Methods: m.Methods, PathRegex: m.PathRegex, Headers: map[string]string(m.Headers)}
			}),
		},
	}
	return convertedWith(out, forgetHeaders)
}

// HTTPRouteGroupHubToV1alpha2 converts a hub HTTPRouteGroup to v1alpha2.
func HTTPRouteGroupHubToV1alpha2(in *specsv1alpha4.HTTPRouteGroup) (*specsv1alpha2.HTTPRouteGroup, error) {
	in = in.DeepCopy()
	out := &specsv1alpha2.HTTPRouteGroup{
		TypeMeta:   typeMeta(specsv1alpha2.SchemeGroupVersion, smi.HTTPRouteGroupKind),
		ObjectMeta: in.ObjectMeta,
		Matches: convertSlice(in.Spec.Matches, func(m specsv1alpha4.HTTPMatch) specsv1alpha2.HTTPMatch {
			return specsv1alpha2.HTTPMatch{Name: m.Name, Methods: m.Methods, PathRegex: m.PathRegex, Headers: map[string]string(m.Headers)}
		}),
	}
	return convertedWith(out, forgetHeaders)
}

// HTTPRouteGroupV1alpha3ToHub converts a v1alpha3 HTTPRouteGroup (the hub's fields) to the hub
// version.
func HTTPRouteGroupV1alpha3ToHub(in *specsv1alpha3.HTTPRouteGroup) (*specsv1alpha4.HTTPRouteGroup, error) {
	in = in.DeepCopy()
	out := &specsv1alpha4.HTTPRouteGroup{
		TypeMeta:   typeMeta(specsv1alpha4.SchemeGroupVersion, smi.HTTPRouteGroupKind),
		ObjectMeta: in.ObjectMeta,
		Spec: specsv1alpha4.HTTPRouteGroupSpec{
			Matches: convertSlice(in.Spec.Matches, func(m specsv1alpha3.HTTPMatch) specsv1alpha4.HTTPMatch {
				return specsv1alpha4.HTTPMatch{Name: m.Name, Methods: m.Methods, PathRegex: m.PathRegex, Headers: map[string]string(m.Headers)}
			}),
		},
	}
	return convertedWith(out, forgetHeaders)
}

// HTTPRouteGroupHubToV1alpha3 converts a hub HTTPRouteGroup to v1alpha3 (the same fields).
func HTTPRouteGroupHubToV1alpha3(in *specsv1alpha4.HTTPRouteGroup) (*specsv1alpha3.HTTPRouteGroup, error) {
	in = in.DeepCopy()
	out := &specsv1alpha3.HTTPRouteGroup{
		TypeMeta:   typeMeta(specsv1alpha3.SchemeGroupVersion, smi.HTTPRouteGroupKind),
		ObjectMeta: in.ObjectMeta,
		Spec: specsv1alpha3.HTTPRouteGroupSpec{
			Matches: convertSlice(in.Spec.Matches, func(m specsv1alpha4.HTTPMatch) specsv1alpha3.HTTPMatch {
				return specsv1alpha3.HTTPMatch{Name: m.Name, Methods: m.Methods, PathRegex: m.PathRegex, Headers: map[string]string(m.Headers)}
			}),
		},
	}
	return convertedWith(out, forgetHeaders)
}

// forgetHeaders drops saved headers from the annotation of a version that holds headers itself.
func forgetHeaders(d *httpRouteGroupData) { d.Headers = nil }

// tcpRouteData is what the conversion annotation of a TCPRoute holds.
type tcpRouteData struct {
	// Matches is the hub's spec.matches, kept while the object is served as v1alpha1–v1alpha3,
	// which have no fields.
	Matches *specsv1alpha4.TCPMatch `json:"matches,omitempty"`
}

// tcpRouteToHub makes the hub TCPRoute of an older version's (which has nothing but metadata),
// giving it back the matches the annotation holds.
func tcpRouteToHub(meta *metav1.ObjectMeta) (*specsv1alpha4.TCPRoute, error) {
	out := &specsv1alpha4.TCPRoute{
		TypeMeta:   typeMeta(specsv1alpha4.SchemeGroupVersion, smi.TCPRouteKind),
		ObjectMeta: *meta.DeepCopy(),
	}
	return convertedWith(out, func(d *tcpRouteData) {
		if d.Matches != nil {
			out.Spec.Matches = *d.Matches
		}
		d.Matches = nil
	})
}

// keepTCPMatches is the annotation update of a hub TCPRoute converted to an older version: it keeps
// the hub's matches.
func keepTCPMatches(in *specsv1alpha4.TCPRoute) func(*tcpRouteData) {
	return func(d *tcpRouteData) {
		d.Matches = nil
		if m := in.Spec.Matches; m.Name != "" || len(m.Ports) > 0 {
			d.Matches = m.DeepCopy()
		}
	}
}

// TCPRouteV1alpha1ToHub converts a v1alpha1 TCPRoute to the hub version.
func TCPRouteV1alpha1ToHub(in *specsv1alpha1.TCPRoute) (*specsv1alpha4.TCPRoute, error) {
	return tcpRouteToHub(&in.ObjectMeta)
}

// TCPRouteHubToV1alpha1 converts a hub TCPRoute to v1alpha1, keeping its matches in the annotation.
func TCPRouteHubToV1alpha1(in *specsv1alpha4.TCPRoute) (*specsv1alpha1.TCPRoute, error) {
	out := &specsv1alpha1.TCPRoute{
		TypeMeta:   typeMeta(specsv1alpha1.SchemeGroupVersion, smi.TCPRouteKind),
		ObjectMeta: *in.ObjectMeta.DeepCopy(),
	}
	return convertedWith(out, keepTCPMatches(in))
}

// TCPRouteV1alpha2ToHub converts a v1alpha2 TCPRoute to the hub version.
func TCPRouteV1alpha2ToHub(in *specsv1alpha2.TCPRoute) (*specsv1alpha4.TCPRoute, error) {
	return tcpRouteToHub(&in.ObjectMeta)
}

// TCPRouteHubToV1alpha2 converts a hub TCPRoute to v1alpha2, keeping its matches in the annotation.
func TCPRouteHubToV1alpha2(in *specsv1alpha4.TCPRoute) (*specsv1alpha2.TCPRoute, error) {
	out := &specsv1alpha2.TCPRoute{
		TypeMeta:   typeMeta(specsv1alpha2.SchemeGroupVersion, smi.TCPRouteKind),
		ObjectMeta: *in.ObjectMeta.DeepCopy(),
	}
	return convertedWith(out, keepTCPMatches(in))
}

// TCPRouteV1alpha3ToHub converts a v1alpha3 TCPRoute (an empty spec) to the hub version.
func TCPRouteV1alpha3ToHub(in *specsv1alpha3.TCPRoute) (*specsv1alpha4.TCPRoute, error) {
	return tcpRouteToHub(&in.ObjectMeta)
}

// TCPRouteHubToV1alpha3 converts a hub TCPRoute to v1alpha3, keeping its matches in the annotation.
func TCPRouteHubToV1alpha3(in *specsv1alpha4.TCPRoute) (*specsv1alpha3.TCPRoute, error) {
	out := &specsv1alpha3.TCPRoute{
		TypeMeta:   typeMeta(specsv1alpha3.SchemeGroupVersion, smi.TCPRouteKind),
		ObjectMeta: *in.ObjectMeta.DeepCopy(),
	}
	return convertedWith(out, keepTCPMatches(in))
}
