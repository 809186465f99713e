// Package objectjson turns a typed Kubernetes object into the JSON object the operator sends to
// the API server: the one form shared by the writer (controllers/owned), `translate` and the
// golden files, so that what a golden file shows is what the API server receives.
//
// Objects whose specs are protobuf messages (Istio's) are marshalled by their own marshalers,
// which follow the proto3 JSON mapping: 64-bit integers (int64, uint64, their wrappers) become
// JSON strings. Their CRDs' schemas declare those fields `type: integer`, so the API server refuses
// such an object when it comes from Go (kubectl is unaffected: YAML written by hand has numbers).
// Unstructured walks the messages next to their JSON and writes those fields back as numbers.
// istio/api#3754 met the same refusal for minClusterSize and changed that one field's type; the
// walk covers every such field, present and future.
package objectjson

import (
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Unstructured is obj as the operator sends it: its JSON, 64-bit integers of protobuf specs as
// numbers, without status (the subresource's) and without the metadata the server owns.
func Unstructured(obj client.Object) (*unstructured.Unstructured, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	// utiljson keeps whole numbers int64, as the API machinery's deep copies expect.
	if err := utiljson.Unmarshal(data, &u.Object); err != nil {
		return nil, err
	}
	integersAsNumbers(obj, u.Object)
	delete(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "metadata", "resourceVersion")
	unstructured.RemoveNestedField(u.Object, "metadata", "managedFields")
	return u, nil
}

// integersAsNumbers finds obj's top-level fields that are protobuf messages (an Istio object's
// spec) and rewrites their 64-bit integers in the JSON object j.
func integersAsNumbers(obj any, j map[string]any) {
	v := reflect.ValueOf(obj)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return
	}
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		sub, ok := j[key].(map[string]any)
		if !f.IsExported() || key == "" || !ok {
			continue
		}
		fv := v.Field(i)
		if fv.Kind() != reflect.Pointer && fv.CanAddr() {
			fv = fv.Addr()
		}
		if fv.Kind() == reflect.Pointer && fv.IsNil() {
			continue
		}
		if m, ok := fv.Interface().(proto.Message); ok {
			walkMessage(m.ProtoReflect(), sub)
		}
	}
}

func walkMessage(m protoreflect.Message, j map[string]any) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		key := fd.JSONName()
		jv, ok := j[key]
		if !ok {
			key = string(fd.Name()) // a marshaler that keeps the proto names
			if jv, ok = j[key]; !ok {
				return true
			}
		}
		switch {
		case fd.IsList():
			arr, ok := jv.([]any)
			if !ok {
				return true
			}
			list := v.List()
			for i := 0; i < list.Len() && i < len(arr); i++ {
				arr[i] = value(fd, list.Get(i), arr[i])
			}
		case fd.IsMap():
			obj, ok := jv.(map[string]any)
			if !ok {
				return true
			}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if e, ok := obj[k.String()]; ok {
					obj[k.String()] = value(fd.MapValue(), mv, e)
				}
				return true
			})
		default:
			j[key] = value(fd, v, jv)
		}
		return true
	})
}

// value is jv, the JSON of v (a value of field fd), with 64-bit integers as numbers.
func value(fd protoreflect.FieldDescriptor, v protoreflect.Value, jv any) any {
	switch fd.Kind() {
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return number(jv)
	case protoreflect.MessageKind, protoreflect.GroupKind:
		switch fd.Message().FullName() {
		case "google.protobuf.Int64Value", "google.protobuf.UInt64Value":
			return number(jv)
		}
		if obj, ok := jv.(map[string]any); ok {
			walkMessage(v.Message(), obj)
		}
	}
	return jv
}

// number is the decimal string s as an int64, or s unchanged when it is not one (a uint64 above
// the int64 range stays a string: unstructured objects hold no larger integer).
func number(jv any) any {
	s, ok := jv.(string)
	if !ok {
		return jv
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil && n <= math.MaxInt64 {
		return int64(n)
	}
	return jv
}
