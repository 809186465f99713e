package accesscheck

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// onlyFields fails the test when m sets a field outside known (proto field names), or carries
// unknown fields: the evaluators only judge what they understand, and a field they would skip
// might be the one that widens access.
func onlyFields(t testing.TB, m proto.Message, known ...string) {
	t.Helper()
	r := m.ProtoReflect()
	r.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if !slices.Contains(known, string(fd.Name())) {
			t.Fatalf("accesscheck: %s sets %s, which this evaluator does not understand: %v",
				r.Descriptor().FullName(), fd.Name(), m)
		}
		return true
	})
	if len(r.GetUnknown()) > 0 {
		t.Fatalf("accesscheck: %s carries unknown fields: %v", r.Descriptor().FullName(), m)
	}
}
