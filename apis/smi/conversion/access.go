package conversion

import (
	accessv1alpha1 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha1"
	accessv1alpha2 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha2"
	accessv1alpha3 "github.com/servicemeshinterface/smi-sdk-go/pkg/apis/access/v1alpha3"

	"github.com/smi-operator/smi-operator/apis/smi"
)

var trafficTargetVersions = []version{
	spoke(accessv1alpha1.SchemeGroupVersion.WithKind(smi.TrafficTargetKind), TrafficTargetV1alpha1ToHub, TrafficTargetHubToV1alpha1),
	spoke(accessv1alpha2.SchemeGroupVersion.WithKind(smi.TrafficTargetKind), TrafficTargetV1alpha2ToHub, TrafficTargetHubToV1alpha2),
	hub(accessv1alpha3.SchemeGroupVersion.WithKind(smi.TrafficTargetKind)),
}

// trafficTargetData is what the conversion annotation of a TrafficTarget holds.
type trafficTargetData struct {
	// Ports of the destination and sources, which v1alpha1 and v1alpha2 have and the hub (v1alpha3)
	// does not. A port is given back only to the same subject (role, kind, name, namespace).
	Ports []subjectPort `json:"ports,omitempty"`
}

// Roles of a subject in a TrafficTarget.
const (
	destinationRole = "destination"
	sourceRole      = "source"
)

// subject is an identity as a TrafficTarget names it, with its place there: the destination, or
// the source at Index.
type subject struct {
	Role      string `json:"role"`
	Index     int    `json:"index"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
}

// subjectPort is the port a subject had.
type subjectPort struct {
	subject
	Port int `json:"port"`
}

// hubSubjects lists the destination and then the sources of a hub TrafficTarget: the order in which
// ports are looked up, and the order of every version's subjects.
func hubSubjects(spec accessv1alpha3.TrafficTargetSpec) []subject {
	subjects := []subject{{Role: destinationRole, Kind: spec.Destination.Kind, Name: spec.Destination.Name, Namespace: spec.Destination.Namespace}}
	for i, s := range spec.Sources {
		subjects = append(subjects, subject{Role: sourceRole, Index: i, Kind: s.Kind, Name: s.Name, Namespace: s.Namespace})
	}
	return subjects
}

// ports returns, for each of subjects, the saved port of the same identity in the same role, at the
// same place if there is one (sources may repeat an identity), or nil. Saved ports of identities no
// longer there are stale.
func (d *trafficTargetData) ports(subjects []subject) []*int {
	sameIdentity := func(s, entry int) bool {
		saved, current := d.Ports[entry].subject, subjects[s]
		saved.Index, current.Index = 0, 0
		return saved == current
	}
	matched := matchSaved(len(subjects), len(d.Ports),
		func(s, entry int) bool { return d.Ports[entry].subject == subjects[s] },
		sameIdentity)
	ports := make([]*int, len(subjects))
	for i, entry := range matched {
		if entry >= 0 {
			ports[i] = &d.Ports[entry].Port
		}
	}
	return ports
}

// setPorts keeps the non-nil ports of subjects, and nothing else.
func (d *trafficTargetData) setPorts(subjects []subject, ports []*int) {
	var kept []subjectPort
	for i, port := range ports {
		if port != nil {
			kept = append(kept, subjectPort{subject: subjects[i], Port: *port})
		}
	}
	d.Ports = kept
}

// sourcesWithPorts converts hub sources to another version's, each with its port (ports[i] is
// sources[i]'s), keeping a nil list nil.
func sourcesWithPorts[S any](sources []accessv1alpha3.IdentityBindingSubject, ports []*int, convert func(accessv1alpha3.IdentityBindingSubject, *int) S) []S {
	if sources == nil {
		return nil
	}
	out := make([]S, len(sources))
	for i, s := range sources {
		out[i] = convert(s, ports[i])
	}
	return out
}

// TrafficTargetDestinationPort returns the port a v1alpha1 or v1alpha2 TrafficTarget gave its
// destination, which the hub (v1alpha3) keeps only in its conversion annotation: the port that
// reading tt as v1alpha2 shows. It is nil when there is none: tt was written without one (v1alpha3
// has no port), or its destination has changed since (a stale port is dropped, as converting
// drops it). The error says that the annotation does not decode, so whether there is a port
// cannot be known; converting reads such an annotation as empty.
func TrafficTargetDestinationPort(tt *accessv1alpha3.TrafficTarget) (*int, error) {
	data, err := conversionData[trafficTargetData](tt)
	if err != nil {
		return nil, err
	}
	return data.ports(hubSubjects(tt.Spec))[0], nil
}

// TrafficTargetV1alpha1ToHub converts a v1alpha1 TrafficTarget (fields at the top level, rules
// called specs) to the hub version, keeping the subjects' ports in the annotation.
func TrafficTargetV1alpha1ToHub(in *accessv1alpha1.TrafficTarget) (*accessv1alpha3.TrafficTarget, error) {
	in = in.DeepCopy()
	toHub := func(s accessv1alpha1.IdentityBindingSubject) accessv1alpha3.IdentityBindingSubject {
		return accessv1alpha3.IdentityBindingSubject{Kind: s.Kind, Name: s.Name, Namespace: s.Namespace}
	}
	out := &accessv1alpha3.TrafficTarget{
		TypeMeta:   typeMeta(accessv1alpha3.SchemeGroupVersion, smi.TrafficTargetKind),
		ObjectMeta: in.ObjectMeta,
		Spec: accessv1alpha3.TrafficTargetSpec{
			Destination: toHub(in.Destination),
			Sources:     convertSlice(in.Sources, toHub),
			Rules: convertSlice(in.Specs, func(r accessv1alpha1.TrafficTargetSpec) accessv1alpha3.TrafficTargetRule {
				return accessv1alpha3.TrafficTargetRule(r)
			}),
		},
	}
	written := []int{in.Destination.Port}
	for _, s := range in.Sources {
		written = append(written, s.Port)
	}
	return convertedWith(out, func(d *trafficTargetData) {
		subjects := hubSubjects(out.Spec)
		earlier := d.ports(subjects)
		ports := make([]*int, len(subjects))
		for i, port := range written {
			switch {
			case port != 0:
				ports[i] = &port
			case earlier[i] != nil && *earlier[i] == 0:
				// v1alpha1 cannot tell port 0 (which a v1alpha2 object can have) from no port.
				ports[i] = earlier[i]
			}
		}
		d.setPorts(subjects, ports)
	})
}

// TrafficTargetHubToV1alpha1 converts a hub TrafficTarget to v1alpha1, giving the subjects back the
// ports the annotation holds for them.
func TrafficTargetHubToV1alpha1(in *accessv1alpha3.TrafficTarget) (*accessv1alpha1.TrafficTarget, error) {
	in = in.DeepCopy()
	out := &accessv1alpha1.TrafficTarget{
		TypeMeta:   typeMeta(accessv1alpha1.SchemeGroupVersion, smi.TrafficTargetKind),
		ObjectMeta: in.ObjectMeta,
		Specs: convertSlice(in.Spec.Rules, func(r accessv1alpha3.TrafficTargetRule) accessv1alpha1.TrafficTargetSpec {
			return accessv1alpha1.TrafficTargetSpec(r)
		}),
	}
	return convertedWith(out, func(d *trafficTargetData) {
		subjects := hubSubjects(in.Spec)
		ports := d.ports(subjects)
		fromHub := func(s accessv1alpha3.IdentityBindingSubject, port *int) accessv1alpha1.IdentityBindingSubject {
			out := accessv1alpha1.IdentityBindingSubject{Kind: s.Kind, Name: s.Name, Namespace: s.Namespace}
			if port != nil {
				out.Port = *port
			}
			return out
		}
		out.Destination = fromHub(in.Spec.Destination, ports[0])
		out.Sources = sourcesWithPorts(in.Spec.Sources, ports[1:], fromHub)
		// Port 0 reads as no port in v1alpha1: keep those for the way back.
		for i, port := range ports {
			if port != nil && *port != 0 {
				ports[i] = nil
			}
		}
		d.setPorts(subjects, ports)
	})
}

// TrafficTargetV1alpha2ToHub converts a v1alpha2 TrafficTarget to the hub version, keeping the
// subjects' ports in the annotation.
func TrafficTargetV1alpha2ToHub(in *accessv1alpha2.TrafficTarget) (*accessv1alpha3.TrafficTarget, error) {
	in = in.DeepCopy()
	toHub := func(s accessv1alpha2.IdentityBindingSubject) accessv1alpha3.IdentityBindingSubject {
		return accessv1alpha3.IdentityBindingSubject{Kind: s.Kind, Name: s.Name, Namespace: s.Namespace}
	}
	out := &accessv1alpha3.TrafficTarget{
		TypeMeta:   typeMeta(accessv1alpha3.SchemeGroupVersion, smi.TrafficTargetKind),
		ObjectMeta: in.ObjectMeta,
		Spec: accessv1alpha3.TrafficTargetSpec{
			Destination: toHub(in.Spec.Destination),
			Sources:     convertSlice(in.Spec.Sources, toHub),
			Rules: convertSlice(in.Spec.Rules, func(r accessv1alpha2.TrafficTargetRule) accessv1alpha3.TrafficTargetRule {
				return accessv1alpha3.TrafficTargetRule(r)
			}),
		},
	}
	ports := []*int{in.Spec.Destination.Port}
	for _, s := range in.Spec.Sources {
		ports = append(ports, s.Port)
	}
	return convertedWith(out, func(d *trafficTargetData) {
		d.setPorts(hubSubjects(out.Spec), ports)
	})
}

// TrafficTargetHubToV1alpha2 converts a hub TrafficTarget to v1alpha2, giving the subjects back the
// ports the annotation holds for them.
func TrafficTargetHubToV1alpha2(in *accessv1alpha3.TrafficTarget) (*accessv1alpha2.TrafficTarget, error) {
	in = in.DeepCopy()
	out := &accessv1alpha2.TrafficTarget{
		TypeMeta:   typeMeta(accessv1alpha2.SchemeGroupVersion, smi.TrafficTargetKind),
		ObjectMeta: in.ObjectMeta,
		Spec: accessv1alpha2.TrafficTargetSpec{
			Rules: convertSlice(in.Spec.Rules, func(r accessv1alpha3.TrafficTargetRule) accessv1alpha2.TrafficTargetRule {
				return accessv1alpha2.TrafficTargetRule(r)
			}),
		},
	}
	return convertedWith(out, func(d *trafficTargetData) {
		ports := d.ports(hubSubjects(in.Spec))
		fromHub := func(s accessv1alpha3.IdentityBindingSubject, port *int) accessv1alpha2.IdentityBindingSubject {
			return accessv1alpha2.IdentityBindingSubject{Kind: s.Kind, Name: s.Name, Namespace: s.Namespace, Port: port}
		}
		out.Spec.Destination = fromHub(in.Spec.Destination, ports[0])
		out.Spec.Sources = sourcesWithPorts(in.Spec.Sources, ports[1:], fromHub)
		d.Ports = nil // v1alpha2 holds every port; those left over were stale
	})
}
