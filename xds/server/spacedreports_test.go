package server

import (
	"slices"
	"testing"
	"time"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

// TestSpacedReportsForgetAQuietObject: an object held in an interval is told when it ends, and
// once a whole interval passes without a change it is forgotten, no timer left for it; objects
// told together are spaced apart by their own changes.
func TestSpacedReportsForgetAQuietObject(t *testing.T) {
	a, b := mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "a"}, mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "b"}
	var told [][]mesh.ObjectRef
	r := newSpacedReports(time.Hour, func(refs []mesh.ObjectRef) { told = append(told, refs) })
	// The intervals end when the test says, one at a time.
	var timers []func()
	r.afterInterval = func(f func()) { timers = append(timers, f) }
	endInterval := func() {
		t.Helper()
		if len(timers) == 0 {
			t.Fatal("no interval is running")
		}
		f := timers[0]
		timers = timers[1:]
		f()
	}

	r.changed([]mesh.ObjectRef{a, b})
	r.changed([]mesh.ObjectRef{a}) // held: a was told within the interval
	if want := [][]mesh.ObjectRef{{a, b}}; !slices.EqualFunc(told, want, slices.Equal) {
		t.Errorf("told %v at once, want %v", told, want)
	}
	endInterval()
	if want := [][]mesh.ObjectRef{{a, b}, {a}}; !slices.EqualFunc(told, want, slices.Equal) {
		t.Errorf("told %v, want %v: a's held change at the end of its interval, b nothing more", told, want)
	}
	if len(timers) != 1 {
		t.Fatalf("%d intervals running after a's held change was told, want a's next one", len(timers))
	}
	endInterval() // a quiet one
	if len(timers) != 0 || len(r.open) != 0 {
		t.Errorf("after a quiet interval: %d timers left, %v held; want none", len(timers), r.open)
	}
	r.changed([]mesh.ObjectRef{b})
	if want := [][]mesh.ObjectRef{{a, b}, {a}, {b}}; !slices.EqualFunc(told, want, slices.Equal) {
		t.Errorf("a forgotten object's change: told %v, want %v (at once)", told, want)
	}
}

// TestSpacedReportsStop: once stopped, neither a change nor one held in an interval is told (the
// server stops: its streams' rejections clear as they close, which concerns no object any more).
func TestSpacedReportsStop(t *testing.T) {
	const interval = 50 * time.Millisecond
	a := mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "a"}
	told := make(chan []mesh.ObjectRef, 4)
	r := newSpacedReports(interval, func(refs []mesh.ObjectRef) { told <- refs })
	r.changed([]mesh.ObjectRef{a})
	<-told
	r.changed([]mesh.ObjectRef{a}) // held until the interval ends
	r.stop()
	r.changed([]mesh.ObjectRef{a})
	select {
	case refs := <-told:
		t.Errorf("told %v after stop", refs)
	case <-time.After(4 * interval):
	}
}
