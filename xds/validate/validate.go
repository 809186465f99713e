// Package validate checks xDS messages the way a client decodes them: the generated ValidateAll
// (protoc-gen-validate's rules) on a message and on every message packed in an Any inside it, at
// any depth — typed_configs of filters, transport sockets, protocol options — since ValidateAll
// stops at Any fields.
package validate

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// Deep runs ValidateAll on m and on every message packed in an Any inside it. An Any whose type
// is not linked in fails too: a client could not decode it either.
func Deep(m proto.Message) error {
	var errs []error
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%T: %w", m, err))
		}
	}
	walkAnys(m.ProtoReflect(), func(a *anypb.Any) {
		inner, err := a.UnmarshalNew()
		if err != nil {
			errs = append(errs, fmt.Errorf("%T: packed %s: %w", m, a.GetTypeUrl(), err))
			return
		}
		errs = append(errs, Deep(inner))
	})
	return errors.Join(errs...)
}

// walkAnys calls f for every Any directly or indirectly set in m, not looking inside the Anys.
func walkAnys(m protoreflect.Message, f func(*anypb.Any)) {
	visit := func(v protoreflect.Message) {
		if a, ok := v.Interface().(*anypb.Any); ok {
			f(a)
			return
		}
		walkAnys(v, f)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				visit(v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				visit(mv.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			visit(v.Message())
		}
		return true
	})
}
