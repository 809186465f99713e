package manifest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func TestSplit(t *testing.T) {
	// doc renders a Document as "index@line:json" or "index@line!error".
	doc := func(d Document) string {
		if d.Err != nil {
			return fmt.Sprintf("%d@%d!%v", d.Index, d.Line, d.Err)
		}
		if d.Warning != "" {
			return fmt.Sprintf("%d@%d:%s ?%s", d.Index, d.Line, d.JSON, d.Warning)
		}
		return fmt.Sprintf("%d@%d:%s", d.Index, d.Line, d.JSON)
	}
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"empty", "", nil},
		{"one YAML document", "a: 1\n", []string{`1@1:{"a":1}`}},
		{"leading separator and comment-only document", "---\na: 1\n---\n# only a comment\n---\n\nb: x\n",
			[]string{`1@2:{"a":1}`, `2@4:`, `3@7:{"b":"x"}`}},
		{"line of the content after comments", "# head\n\n  # more\na: 1\n", []string{`1@4:{"a":1}`}},
		{"empty documents are skipped", "a: 1\n---\n---\nb: 2\n---\n", []string{`1@1:{"a":1}`, `2@4:{"b":2}`}},
		{"separator with a comment, CRLF", "a: 1\r\n--- # next\r\nb: 2", []string{`1@1:{"a":1}`, `2@3:{"b":2}`}},
		{"broken document between good ones", "a: 1\n---\nb: 2\nc: [\n---\nc: 3\n",
			[]string{`1@1:{"a":1}`, "2@3!error converting YAML to JSON: yaml: line 4: did not find expected node content", `3@6:{"c":3}`}},
		{"invalid separator", "a: 1\n--- b\nc: 3\n---\nd: 4", []string{`1@1:{"a":1}`, "2@2!invalid Yaml document separator: b", `3@5:{"d":4}`}},
		{"JSON stream", ` {"a": 1} {"b": 2}` + "\n\n [3]", []string{`1@1:{"a": 1}`, `2@1:{"b": 2}`, `3@3:[3]`}},
		{"JSON stream with a syntax error", "{\"a\": 1}\n{\"b\":\n}", []string{`1@1:{"a": 1}`,
			"2@2!error parsing JSON: line 3: invalid character '}' looking for beginning of value"}},
		{"YAML flow mapping", "{a: 1}\n---\n{b: 2}\n", []string{`1@1:{"a":1}`, `2@3:{"b":2}`}},
		{"JSON null", "null", []string{`1@1:`}},
		{"content after a flow mapping", "a: 1\n---\n{b: 2}\nc: 3\n", []string{`1@1:{"a":1}`,
			`2@3:{"b":2} ?content after the first YAML node (a complete {...} or [...], or a "..." line) is ignored, as kubectl ignores it`}},
		{"content after an end marker", "a: 1\n---\nb: 2\n...\nc: 3\n", []string{`1@1:{"a":1}`,
			`2@3:{"b":2} ?content after the first YAML node (a complete {...} or [...], or a "..." line) is ignored, as kubectl ignores it`}},
		{"comment after an end marker", "b: 2\n...\n# c\n", []string{`1@1:{"b":2}`}},
		{"YAML documents written in JSON", "{\"a\": 1}\n---\n{\"b\": 2}\n---\nc: 3\n", []string{`1@1:{"a":1}`, `2@3:{"b":2}`, `3@5:{"c":3}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, d := range Split([]byte(tc.in)) {
				got = append(got, doc(d))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Split(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	obj, err := Decode([]byte(`{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"ports":[{"port":80}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if svc, ok := obj.(*corev1.Service); !ok || svc.Name != "web" || svc.Spec.Ports[0].Port != 80 {
		t.Errorf("Decode gave %#v", obj)
	}
	for in, want := range map[string]string{
		`{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"portz":[]}}`: `strict decoding error: unknown field "spec.portz"`,
		`{"apiVersion":"v1","kind":"ServiceList","items":[]}`:                                "/v1, Kind=ServiceList is not a kind the mesh model reads",
		`{"apiVersion":"v1","kind":"ConfigMap"}`:                                             "/v1, Kind=ConfigMap is not a kind the mesh model reads",
		`{"apiVersion":"v1","kind":"Servce"}`:                                                `no kind "Servce" is registered for version "v1"`,
	} {
		if _, err := Decode([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%s): got error %v, want one containing %q", in, err, want)
		}
	}
}
