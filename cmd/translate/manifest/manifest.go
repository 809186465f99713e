// Package manifest reads Kubernetes manifests the way kubectl does: a stream of YAML documents
// separated by "---" lines, or of JSON objects one after the other, each turned into the JSON the
// API server would receive; and it decodes, strictly, the kinds the mesh model is built from.
//
// It is shared by the offline translate command (package translate) and the translators' golden
// tests (package internal/golden), so that a case file and a file under review are read
// alike. It has no state and reads nothing but the bytes it is given.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	yaml3 "go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/yaml"

	policyv1alpha1 "github.com/smi-operator/smi-operator/apis/policy/v1alpha1"
	"github.com/smi-operator/smi-operator/apis/smi"
)

// Document is one document of a stream.
type Document struct {
	// Index is the document's position in its stream, from 1. Documents that hold only comments
	// count, so the index is the one a reader counting "---" lines finds.
	Index int
	// Line is the line of the stream, from 1, on which the document's content starts, after
	// leading comments (the document's first line if it has no content).
	Line int
	// JSON is the document as JSON; nil when it holds nothing but comments and blank lines.
	JSON []byte
	// Err says why the document could not be read; JSON is then nil. Line numbers in it are the
	// stream's.
	Err error
	// Warning, when set, says what part of the document is ignored: YAML after a complete flow
	// collection or after a "..." end marker, which kubectl ignores too.
	Warning string
}

// Split cuts data into its documents. data starting with "{" (after blank space) is read as a
// stream of JSON values, as kubectl does; should that fail where reading it as YAML does not (a
// YAML flow mapping also starts with "{", and YAML documents may be written in JSON), the whole is
// read as YAML. Otherwise data is YAML: documents separated by
// lines starting with "---" (a comment may follow; anything else after it is refused, as kubectl
// refuses it), each converted to JSON on its own, so one broken document does not hide the others.
// Split never fails as a whole: a document that cannot be read carries its error, and in a JSON
// stream, where nothing after a syntax error can be found again, it is the last one.
func Split(data []byte) []Document {
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '{' {
		docs, ok := splitJSON(data)
		if ok && (len(docs) == 0 || docs[len(docs)-1].Err == nil) {
			return docs
		}
		// Not a JSON stream throughout: YAML documents whose first one is written in JSON or as
		// a flow mapping read as YAML, when they read cleanly.
		yamlDocs := splitYAML(data)
		if !ok || !slices.ContainsFunc(yamlDocs, func(d Document) bool { return d.Err != nil || d.Warning != "" }) {
			return yamlDocs
		}
		return docs
	}
	return splitYAML(data)
}

// splitJSON reads a stream of JSON values; ok is false when not even the first one is JSON.
func splitJSON(data []byte) ([]Document, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var docs []Document
	for index := 1; ; index++ {
		start := int(dec.InputOffset())
		start += len(data[start:]) - len(bytes.TrimLeft(data[start:], " \t\r\n"))
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return docs, true
		}
		if err != nil {
			if index == 1 {
				return nil, false
			}
			at := len(data)
			if syntax, ok := errors.AsType[*json.SyntaxError](err); ok {
				at = int(syntax.Offset)
			}
			err = fmt.Errorf("error parsing JSON: line %d: %w", lineAt(data, at), err)
			return append(docs, Document{Index: index, Line: lineAt(data, start), Err: err}), true
		}
		docs = append(docs, Document{Index: index, Line: lineAt(data, start), JSON: nullToNil(raw)})
	}
}

// lineAt is the line, from 1, of data's byte at offset.
func lineAt(data []byte, offset int) int {
	return 1 + bytes.Count(data[:min(offset, len(data))], []byte("\n"))
}

// splitYAML cuts a YAML stream where k8s.io/apimachinery's YAMLReader (kubectl's) does, keeping
// track of lines: a line starting with "---" ends a document and starts the next; empty documents
// (nothing between two separators) are skipped.
func splitYAML(data []byte) []Document {
	var docs []Document
	var buf []byte
	bufLine, badSeparator := 1, ""
	flush := func() {
		switch {
		case badSeparator != "":
			err := fmt.Errorf("invalid Yaml document separator: %s", badSeparator) // kubectl's words
			docs = append(docs, Document{Index: len(docs) + 1, Line: bufLine - 1, Err: err})
		case len(buf) > 0:
			docs = append(docs, yamlDocument(len(docs)+1, bufLine, buf))
		}
	}
	for line, rest, n := []byte(nil), data, 1; len(rest) > 0; n++ {
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i+1], rest[i+1:]
		} else {
			line, rest = rest, nil
		}
		if after, ok := bytes.CutPrefix(line, []byte("---")); ok {
			flush()
			buf, bufLine, badSeparator = nil, n+1, ""
			if trimmed := strings.TrimSpace(string(after)); trimmed != "" && trimmed[0] != '#' {
				badSeparator = trimmed
			}
			continue
		}
		buf = append(buf, line...)
	}
	flush()
	return docs
}

// yamlLine finds the line numbers in go-yaml's errors, which count from the document's start.
var yamlLine = regexp.MustCompile(`yaml: line (\d+):`)

func yamlDocument(index, line int, doc []byte) Document {
	// The document is said to start where its content does, after leading comments.
	start := line
	for n, rest := line, doc; len(rest) > 0; n++ {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\n"))
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			start = n
			break
		}
	}
	out, err := yaml.YAMLToJSON(doc)
	if err != nil {
		msg := streamLines(err.Error(), line)
		if !strings.HasPrefix(msg, "error converting YAML to JSON") {
			msg = "error converting YAML to JSON: " + msg // kubectl's words
		}
		return Document{Index: index, Line: start, Err: errors.New(msg)}
	}
	return Document{Index: index, Line: start, JSON: nullToNil(out), Warning: ignoredRest(doc)}
}

// ignoredRest reports YAML that follows the document's first node, which go-yaml v2 (and so
// sigs.k8s.io/yaml and kubectl) silently leaves out: more after a complete flow collection
// ("{...}" or "[...]" at the top), or a second document after a "..." end marker. go-yaml v3
// parses the whole document and finds it.
func ignoredRest(doc []byte) string {
	dec := yaml3.NewDecoder(bytes.NewReader(doc))
	var first, next yaml3.Node
	if err := dec.Decode(&first); err != nil {
		return "" // v3 is stricter than v2 in places; only what v2 read is in question
	}
	if err := dec.Decode(&next); errors.Is(err, io.EOF) {
		return ""
	}
	return `content after the first YAML node (a complete {...} or [...], or a "..." line) is ignored, as kubectl ignores it`
}

// streamLines rewrites go-yaml's line numbers, which count from the document's first line, to
// count from the stream's.
func streamLines(msg string, line int) string {
	return yamlLine.ReplaceAllStringFunc(msg, func(m string) string {
		n, _ := strconv.Atoi(yamlLine.FindStringSubmatch(m)[1])
		return fmt.Sprintf("yaml: line %d:", line+n-1)
	})
}

// nullToNil maps the JSON of an empty document (YAML with comments only gives null) to nil.
func nullToNil(raw []byte) []byte {
	if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" {
		return nil
	}
	return raw
}

// Scheme knows the kinds the mesh model is built from: every served version of every SMI kind,
// the operator's TrafficPolicy,
// Services, EndpointSlices, Deployments, StatefulSets, DaemonSets and Namespaces, and the Pods
// whose ServiceAccounts the xDS clusters accept as their endpoints' servers.
var Scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{smi.AddToScheme, policyv1alpha1.AddToScheme, corev1.AddToScheme, appsv1.AddToScheme, discoveryv1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// modelKinds are the kinds of Scheme that the model reads; the scheme also holds list and option
// types, which are not manifests of their own.
var modelKinds = map[schema.GroupKind]bool{
	{Group: smi.SplitGroup, Kind: smi.TrafficSplitKind}:                   true,
	{Group: smi.AccessGroup, Kind: smi.TrafficTargetKind}:                 true,
	{Group: smi.SpecsGroup, Kind: smi.HTTPRouteGroupKind}:                 true,
	{Group: smi.SpecsGroup, Kind: smi.TCPRouteKind}:                       true,
	{Group: smi.SpecsGroup, Kind: smi.UDPRouteKind}:                       true,
	{Group: policyv1alpha1.Group, Kind: policyv1alpha1.TrafficPolicyKind}: true,
	{Group: "", Kind: "Service"}:                                          true,
	{Group: "", Kind: "Namespace"}:                                        true,
	{Group: "", Kind: "Pod"}:                                              true,
	{Group: discoveryv1.GroupName, Kind: "EndpointSlice"}:                 true,
	{Group: appsv1.GroupName, Kind: "Deployment"}:                         true,
	{Group: appsv1.GroupName, Kind: "StatefulSet"}:                        true,
	{Group: appsv1.GroupName, Kind: "DaemonSet"}:                          true,
}

// Reads reports whether gvk is a kind and version that the model is built from, which [Decode]
// decodes.
func Reads(gvk schema.GroupVersionKind) bool {
	return modelKinds[gvk.GroupKind()] && Scheme.Recognizes(gvk)
}

// strict refuses unknown and duplicate fields, as the API server does with kubectl's default
// --validate=strict: a misspelt field must fail, not silently mean something else.
var strict = serializer.NewCodecFactory(Scheme, serializer.EnableStrict).UniversalDeserializer()

// Decode decodes one document (JSON, or YAML) of a kind [Reads] accepts into its typed object.
// Unknown or duplicate fields are an error ("strict decoding error: unknown field ..."), as is any
// other kind. It does not validate: an SMI object should go through apis/smi/validation first, which
// also keeps values that would make decoding itself misbehave (v1alpha1 weight quantities) away.
func Decode(data []byte) (runtime.Object, error) {
	obj, gvk, err := strict.Decode(data, nil, nil)
	if err != nil {
		return nil, err
	}
	if !Reads(*gvk) {
		return nil, fmt.Errorf("%s is not a kind the mesh model reads", gvk)
	}
	return obj, nil
}
