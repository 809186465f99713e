package xds

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/smi-operator/smi-operator/xds/validate"
)

// validateDeep fails t with what validate.Deep finds in m: ValidateAll on it and on every message
// packed in an Any inside it.
func validateDeep(t *testing.T, m proto.Message) {
	t.Helper()
	if err := validate.Deep(m); err != nil {
		t.Error(err)
	}
}
