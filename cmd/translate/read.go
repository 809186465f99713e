package translate

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/smi-operator/smi-operator/apis/smi"
	"github.com/smi-operator/smi-operator/apis/smi/validation"
	"github.com/smi-operator/smi-operator/cmd/translate/crdvalidation"
	"github.com/smi-operator/smi-operator/cmd/translate/manifest"
)

// stdinName names standard input in messages.
const stdinName = "<stdin>"

// file is one input file, read.
type file struct {
	name string
	data []byte
}

// readInputs reads the files args name: "-" is standard input (once), a directory is walked
// recursively for *.yaml, *.yml and *.json in lexical order, leaving out hidden entries and
// kustomization files (noted), and any other path is read whatever its name. Any failure is the
// caller's (exit code 2): nothing is translated from part of the input.
func readInputs(args []string, stdin io.Reader) ([]file, []report, error) {
	var files []file
	var notes []report
	stdinRead := false
	for _, arg := range args {
		if arg == "-" {
			if stdinRead {
				return nil, nil, errors.New(`"-" (standard input) is given more than once`)
			}
			stdinRead = true
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, nil, fmt.Errorf("reading standard input: %w", err)
			}
			files = append(files, file{name: stdinName, data: data})
			continue
		}
		info, err := os.Stat(arg)
		if err != nil {
			return nil, nil, err
		}
		if !info.IsDir() {
			data, err := os.ReadFile(arg)
			if err != nil {
				return nil, nil, err
			}
			files = append(files, file{name: arg, data: data})
			continue
		}
		err = filepath.WalkDir(arg, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path != arg && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() || !isManifestName(d.Name()) {
				return nil
			}
			if isKustomization(d.Name()) {
				notes = append(notes, report{level: levelNote, at: path, text: "skipped: a kustomization is not a manifest; " +
					"render it first: kubectl kustomize " + filepath.Dir(path) + " | smi-operator translate -"})
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			files = append(files, file{name: path, data: data})
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return files, notes, nil
}

func isManifestName(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

func isKustomization(name string) bool {
	switch name {
	case "kustomization.yaml", "kustomization.yml", "Kustomization":
		return true
	}
	return false
}

// Report levels, the first word of each line on standard error. Any error makes the exit code 1.
const (
	levelError   = "error"
	levelWarning = "warning"
	levelNote    = "note"
)

// report is one line for standard error: "<level>: <at>: <text>".
type report struct {
	level, at, text string
}

// String is the report's line, without line breaks: whatever the input holds, one report is
// one line.
func (r report) String() string {
	line := r.level + ": " + r.text
	if r.at != "" {
		line = r.level + ": " + r.at + ": " + r.text
	}
	return lineBreaks.Replace(line)
}

var lineBreaks = strings.NewReplacer("\r\n", `\n`, "\n", `\n`, "\r", `\r`)

// position is where an object was read.
type position struct {
	file string
	// line and doc are the line its document starts on and its index in the file, from 1.
	line, doc int
	// item is its index, from 1, in the list (kind List) holding it; 0 when it is not in one.
	// Lists do not nest.
	item int
}

func (p position) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d (document %d", p.file, p.line, p.doc)
	if p.item > 0 {
		fmt.Fprintf(&b, ", item %d", p.item)
	}
	return b.String() + ")"
}

func (p position) inList(item int) position {
	p.item = item
	return p
}

// object is an accepted input object: one the API server would store.
type object struct {
	pos             position
	gvk             schema.GroupVersionKind
	namespace, name string
	obj             runtime.Object
}

// objectKey identifies an object in the cluster: one object whatever version it is written in.
type objectKey struct {
	kind            schema.GroupKind
	namespace, name string
}

// reader turns documents into accepted objects and reports, as the API server would take them
// with kubectl apply: each object on its own, a refused one leaving the others in.
type reader struct {
	// namespace is given to objects without one; explicit says it came from --namespace, which
	// objects naming another namespace then contradict (kubectl refuses them).
	namespace string
	explicit  bool
	reports   []report
	objects   []*object
	byKey     map[objectKey]int
}

func newReader(namespace string, explicit bool) *reader {
	return &reader{namespace: namespace, explicit: explicit, byKey: map[objectKey]int{}}
}

func (r *reader) report(level string, at fmt.Stringer, format string, args ...any) {
	r.reports = append(r.reports, report{level: level, at: at.String(), text: fmt.Sprintf(format, args...)})
}

// file reads every document of one file.
func (r *reader) file(name string, data []byte) {
	for _, doc := range manifest.Split(data) {
		pos := position{file: name, line: doc.Line, doc: doc.Index}
		if doc.Warning != "" {
			r.report(levelWarning, pos, "%s", doc.Warning)
		}
		switch {
		case doc.Err != nil:
			r.report(levelError, pos, "%v", doc.Err)
		case doc.JSON != nil:
			r.document(pos, doc.JSON)
		}
	}
}

// document reads one document: an object, or a list (kind List, or any kind ending in "List"
// with items, as kubectl get -o yaml writes them) whose items are read one by one.
func (r *reader) document(pos position, raw []byte) {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		r.report(levelError, pos, "not an object: a manifest document must be a mapping of apiVersion, kind, metadata, ...")
		return
	}
	var m map[string]any
	if err := utiljson.Unmarshal(raw, &m); err != nil {
		r.report(levelError, pos, "cannot decode the document: %v", err)
		return
	}
	r.value(pos, m)
}

func (r *reader) value(pos position, m map[string]any) {
	apiVersion, _ := m["apiVersion"].(string)
	kind, _ := m["kind"].(string)
	switch {
	case kind == "":
		r.report(levelError, pos, "Object 'Kind' is missing")
		return
	case apiVersion == "":
		r.report(levelError, pos, "Object 'apiVersion' is missing")
		return
	}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		r.report(levelError, pos, "%v", err)
		return
	}
	if items, ok := m["items"].([]any); ok && strings.HasSuffix(kind, "List") {
		if pos.item > 0 {
			r.report(levelError, pos, "a %s inside a list is not read: list its items in the outer list", kind)
			return
		}
		for i, item := range items {
			if obj, ok := item.(map[string]any); ok {
				r.value(pos.inList(i+1), obj)
			} else {
				r.report(levelError, pos.inList(i+1), "not an object: a list item must be a mapping of apiVersion, kind, metadata, ...")
			}
		}
		return
	}
	r.object(pos, gv.WithKind(kind), m)
}

// object classifies one object by its kind and takes it in, or not, as the cluster would.
func (r *reader) object(pos position, gvk schema.GroupVersionKind, m map[string]any) {
	meta, _ := m["metadata"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
		m["metadata"] = meta
	}
	name, _ := meta["name"].(string)
	namespace, _ := meta["namespace"].(string)
	at := stringer(pos.String() + ": " + subjectOf(gvk, namespace, name))

	isSMI := isSMIGroup(gvk.Group)
	builtin := clientgoscheme.Scheme.IsGroupRegistered(gvk.Group)
	switch {
	case isSMI && !crdvalidation.Served(gvk):
		// The CRDs say what the cluster serves.
		r.report(levelError, at, "%s", noMatches(gvk))
		return
	case manifest.Reads(gvk):
		// read below
	case builtin && readKinds[gvk.Kind]:
		// An old version (apps/v1beta1, extensions/v1beta1, discovery.k8s.io/v1beta1) that
		// client-go still knows but the cluster no longer serves.
		r.report(levelError, at, "%s", noMatches(gvk))
		return
	case clientgoscheme.Scheme.Recognizes(gvk):
		r.report(levelNote, at, "ignored: the translation does not read %s objects", gvk.Kind)
		return
	case builtin:
		r.report(levelError, at, "%s", noMatches(gvk))
		return
	default:
		r.report(levelNote, at, "ignored: not a kind the translation reads")
		return
	}

	if namespace == "" {
		namespace = r.namespace
		meta["namespace"] = namespace
		at = stringer(pos.String() + ": " + subjectOf(gvk, namespace, name))
	} else if r.explicit && namespace != r.namespace {
		r.report(levelError, at, "the namespace from the provided object %q does not match the namespace %q. "+
			"You must pass '--namespace=%s' to perform this operation.", namespace, r.namespace, namespace)
		return
	}
	var errs field.ErrorList
	var err error
	switch {
	case isSMI:
		errs, err = admitSMI(gvk, m)
	case crdvalidation.Served(gvk):
		// A TrafficPolicy: its CRD's schema and CEL rules are all there is (no webhook). Its
		// schema has more fields that can fail together than SMI's, which the validator visits
		// in map order: sorted by field, one input always gets one report (the field-less note
		// on skipped rules last).
		errs, err = crdvalidation.Validate(gvk, m)
		slices.SortStableFunc(errs, func(a, b *field.Error) int {
			return cmp.Or(cmp.Compare(boolRank(a.Field == ""), boolRank(b.Field == "")), cmp.Compare(a.Field, b.Field))
		})
	default:
		errs = validateMeta(gvk, meta)
	}
	if err != nil {
		r.report(levelError, at, "%v", err)
		return
	}
	if len(errs) > 0 {
		r.fieldErrors(at, errs)
		return
	}
	// Decoded only now: what could not be decoded has been refused above, with its field.
	raw, err := json.Marshal(m)
	if err != nil {
		r.report(levelError, at, "%v", err)
		return
	}
	obj, err := manifest.Decode(raw)
	if err != nil {
		r.report(levelError, at, "%v", err)
		return
	}
	r.accept(&object{pos: pos, gvk: gvk, namespace: namespace, name: name, obj: obj}, at)
}

// accept keeps obj, replacing an earlier object it names again: applying both, the later wins.
func (r *reader) accept(obj *object, at fmt.Stringer) {
	key := objectKey{kind: obj.gvk.GroupKind(), namespace: obj.namespace, name: obj.name}
	if i, ok := r.byKey[key]; ok {
		r.report(levelWarning, at, "replaces the same object read at %s: applying both, the later one wins", r.objects[i].pos)
		r.objects[i] = obj
		return
	}
	r.byKey[key] = len(r.objects)
	r.objects = append(r.objects, obj)
}

func (r *reader) fieldErrors(at fmt.Stringer, errs field.ErrorList) {
	for _, e := range errs {
		r.report(levelError, at, "%s", e.Error())
	}
}

// admitSMI judges an SMI object as the API server judges its create: against the CRD version's
// schema (package crdvalidation, which also drops status and unknown fields from m as the API
// server does), then, only when that accepts it, as the validating webhook does, on the JSON the
// webhook would receive. The webhook's checks also keep input that would make decoding misbehave
// (v1alpha1 quantities) from reaching the decoder. err is a decoding error, which ends a request
// before validation.
func admitSMI(gvk schema.GroupVersionKind, m map[string]any) (field.ErrorList, error) {
	errs, err := crdvalidation.Validate(gvk, m)
	if err != nil || len(errs) > 0 {
		return errs, err
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return validation.ValidateJSON(gvk, raw)
}

// validateMeta checks metadata as the API server does on create of a built-in kind, with the name
// rules of the kind: Services' names are DNS-1035 labels, the others' DNS-1123 subdomains. (SMI
// objects' metadata is checked by crdvalidation, as for any custom resource.)
func validateMeta(gvk schema.GroupVersionKind, raw map[string]any) field.ErrorList {
	path := field.NewPath("metadata")
	data, err := json.Marshal(raw)
	if err != nil {
		return field.ErrorList{field.Invalid(path, raw, err.Error())}
	}
	var meta metav1.ObjectMeta
	if err := utiljson.Unmarshal(data, &meta); err != nil {
		return field.ErrorList{field.Invalid(path, string(data), "cannot decode metadata: "+err.Error())}
	}
	nameRule := apivalidation.NameIsDNSSubdomain
	if gvk.Group == corev1.GroupName && gvk.Kind == "Service" {
		nameRule = apivalidation.NameIsDNS1035Label
	}
	return apivalidation.ValidateObjectMetaAccessor(&meta, true, nameRule, path)
}

// noMatches is what kubectl says of a kind and version the cluster does not serve, with the
// versions it serves when the kind is one the translation reads.
func noMatches(gvk schema.GroupVersionKind) string {
	msg := fmt.Sprintf("no matches for kind %q in version %q", gvk.Kind, gvk.GroupVersion())
	var served []string
	for _, v := range servedVersions {
		if v.Kind == gvk.Kind && (v.Group == gvk.Group || !isSMIGroup(gvk.Group)) {
			served = append(served, v.GroupVersion().String())
		}
	}
	if len(served) > 0 {
		msg += fmt.Sprintf(": %s is served as %s", gvk.Kind, strings.Join(served, ", "))
	}
	return msg
}

// servedVersions are the kinds and versions the translation reads, which are all the cluster
// serves of those kinds (Kubernetes 1.37 serves Deployments, StatefulSets and DaemonSets only
// as apps/v1, EndpointSlices only as discovery.k8s.io/v1), sorted.
var servedVersions = func() []schema.GroupVersionKind {
	var out []schema.GroupVersionKind
	for gvk := range manifest.Scheme.AllKnownTypes() {
		if manifest.Reads(gvk) {
			out = append(out, gvk)
		}
	}
	slices.SortFunc(out, func(a, b schema.GroupVersionKind) int {
		return strings.Compare(a.GroupVersion().String()+"/"+a.Kind, b.GroupVersion().String()+"/"+b.Kind)
	})
	return out
}()

// readKinds are the kinds the translation reads, by kind name alone.
var readKinds = func() map[string]bool {
	kinds := map[string]bool{}
	for _, gvk := range servedVersions {
		kinds[gvk.Kind] = true
	}
	return kinds
}()

func isSMIGroup(group string) bool {
	_, ok := smi.HubFor(group)
	return ok
}

// subjectOf names an object in messages: "<Kind> <namespace>/<name> (<apiVersion>)", without
// "<namespace>/" when it has none.
func subjectOf(gvk schema.GroupVersionKind, namespace, name string) string {
	if name == "" {
		name = "<no name>"
	}
	if namespace != "" {
		name = namespace + "/" + name
	}
	return fmt.Sprintf("%s %s (%s)", gvk.Kind, name, gvk.GroupVersion())
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

type stringer string

func (s stringer) String() string { return string(s) }
