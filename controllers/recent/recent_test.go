package recent

import "testing"

func TestPending(t *testing.T) {
	key := Key{Kind: "VirtualService", Namespace: "shop", Name: "web"}
	a, b := Hash(map[string]int{"weight": 1}), Hash(map[string]int{"weight": 2})
	var w Writes
	if w.Pending(key, a, "") {
		t.Fatal("nothing was written, yet a write is pending")
	}
	w.Record(key, a, "7")
	tests := []struct {
		name    string
		content [32]byte
		cached  string
		want    bool
	}{
		{"the cache still shows the object as it was before the write", a, "7", true},
		{"other content is not the write that was made", b, "7", false},
	}
	for _, tc := range tests {
		if got := w.Pending(key, tc.content, tc.cached); got != tc.want {
			t.Errorf("%s: Pending = %v, want %v", tc.name, got, tc.want)
		}
	}
	if w.Pending(key, a, "9") {
		t.Error("the cache moved on (ours or someone else's change): nothing may be skipped")
	}
	if w.Pending(key, a, "7") {
		t.Error("the record outlived the cache catching up")
	}
}

// TestForget: a created object that is deleted again leaves the cache showing no object, as it
// did before the creation; once forgotten, that must not pass for "the creation is not seen yet".
func TestForget(t *testing.T) {
	key := Key{Kind: "VirtualService", Namespace: "shop", Name: "web"}
	a := Hash(map[string]int{"weight": 1})
	var w Writes
	w.Record(key, a, "")
	if !w.Pending(key, a, "") {
		t.Fatal("the creation is not recorded")
	}
	w.Forget(key)
	if w.Pending(key, a, "") {
		t.Error("a forgotten creation still counts as pending: the object would never be created again")
	}
}
