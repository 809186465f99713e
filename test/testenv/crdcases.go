package testenv

import (
	"context"
	"os"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// Client returns a client of the control plane (started on first use) whose scheme holds what
// adds register.
func (l *Lazy) Client(t testing.TB, adds ...func(*runtime.Scheme) error) client.Client {
	t.Helper()
	env := l.Get(t)
	scheme := runtime.NewScheme()
	for _, add := range adds {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Edit changes an object of a CRD validation case.
type Edit func(u *unstructured.Unstructured) error

// Set sets the field at a dotted path ("spec.xds.port") to a JSON value.
func Set(path string, value any) Edit {
	return func(u *unstructured.Unstructured) error {
		return unstructured.SetNestedField(u.Object, value, strings.Split(path, ".")...)
	}
}

// Unset removes the field at a dotted path.
func Unset(path string) Edit {
	return func(u *unstructured.Unstructured) error {
		unstructured.RemoveNestedField(u.Object, strings.Split(path, ".")...)
		return nil
	}
}

// CheckCreate sends the sample manifest at path, changed by edit (nil: as it is), to the API
// server as subtest name (dry run: nothing is stored), and checks that it is accepted when want is
// "", else refused as invalid (422) with an error containing want.
func CheckCreate(t *testing.T, c client.Client, path, name string, edit Edit, want string) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(data, &obj.Object); err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			if err := edit(obj); err != nil {
				t.Fatal(err)
			}
		}
		err = c.Create(context.Background(), obj, client.DryRunAll)
		switch {
		case want == "" && err != nil:
			t.Fatalf("refused: %v", err)
		case want == "":
		case err == nil:
			t.Fatalf("accepted, want an error containing %q", want)
		case !apierrors.IsInvalid(err):
			t.Fatalf("error %v is not Invalid (422)", err)
		case !strings.Contains(err.Error(), want):
			t.Fatalf("error %q does not contain %q", err, want)
		}
	})
}
