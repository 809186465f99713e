package unobserved

import (
	"slices"
	"testing"
)

// locked calls check as Begin does, with the lock held.
func (w *Writes) locked(check func(Key, [32]byte, string) bool, key Key, content [32]byte, cached string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return check(key, content, cached)
}

func TestPending(t *testing.T) {
	key := Key{Kind: "VirtualService", Namespace: "shop", Name: "web"}
	a, b := Hash(map[string]int{"weight": 1}), Hash(map[string]int{"weight": 2})
	var w Writes
	if w.locked(w.pending, key, a, "") {
		t.Fatal("nothing was written, yet a write is pending")
	}
	w.Begin(key, a, "7")
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
		if got := w.locked(w.pending, key, tc.content, tc.cached); got != tc.want {
			t.Errorf("%s: Pending = %v, want %v", tc.name, got, tc.want)
		}
	}
	if w.locked(w.pending, key, a, "9") {
		t.Error("the cache moved on (ours or someone else's change): nothing may be skipped")
	}
	if w.locked(w.pending, key, a, "7") {
		t.Error("the record outlived the cache catching up")
	}
}

// TestForget: a created object that is deleted again leaves the cache showing no object, as it
// did before the creation; once forgotten, that must not pass for "the creation is not seen yet".
func TestForget(t *testing.T) {
	key := Key{Kind: "VirtualService", Namespace: "shop", Name: "web"}
	a := Hash(map[string]int{"weight": 1})
	var w Writes
	w.Begin(key, a, "")
	if !w.locked(w.pending, key, a, "") {
		t.Fatal("the creation is not recorded")
	}
	w.Forget(key)
	if w.locked(w.pending, key, a, "") {
		t.Error("a forgotten creation still counts as pending: the object would never be created again")
	}
}

// TestBeginOnce: of two writers wanting the same content while the cache shows the same version,
// one writes; other content, or a cache that moved on, writes again.
func TestBeginOnce(t *testing.T) {
	key := Key{Kind: "AuthorizationPolicy", Namespace: "shop", Name: "smi-default-deny"}
	a, b := Hash(map[string]int{"weight": 1}), Hash(map[string]int{"weight": 2})
	var w Writes
	got := []bool{w.Begin(key, a, ""), w.Begin(key, a, ""), w.Begin(key, b, ""), w.Begin(key, b, "3")}
	if want := []bool{true, false, true, true}; !slices.Equal(got, want) {
		t.Errorf("Begin = %v, want %v", got, want)
	}
	w.Forget(key) // the write failed
	if !w.Begin(key, b, "3") {
		t.Error("a failed write, forgotten, still keeps the next one from being sent")
	}
}
