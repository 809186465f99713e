package server

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/smi-operator/smi-operator/translators/mesh"
)

// TestSpacedReportsForgetAQuietObject: an object held in an interval is told when it ends, and
// once a whole interval passes without a change it is forgotten, no timer left for it; objects
// told together are spaced apart by their own changes.
func TestSpacedReportsForgetAQuietObject(t *testing.T) {
	const interval = 100 * time.Millisecond
	a, b := mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "a"}, mesh.ObjectRef{Kind: "TrafficSplit", Namespace: "shop", Name: "b"}
	var mu sync.Mutex
	var told [][]mesh.ObjectRef
	r := newSpacedReports(interval, func(refs []mesh.ObjectRef) {
		mu.Lock()
		defer mu.Unlock()
		told = append(told, refs)
	})
	r.changed([]mesh.ObjectRef{a, b})
	r.changed([]mesh.ObjectRef{a}) // held: a was told within the interval
	mu.Lock()
	if want := [][]mesh.ObjectRef{{a, b}}; !slices.EqualFunc(told, want, slices.Equal) {
		t.Errorf("told %v at once, want %v", told, want)
	}
	mu.Unlock()

	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		open := len(r.open)
		r.mu.Unlock()
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d objects still held 10 s after their last change (interval %v)", open, interval)
		}
		time.Sleep(interval / 4)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := [][]mesh.ObjectRef{{a, b}, {a}}; !slices.EqualFunc(told, want, slices.Equal) {
		t.Errorf("told %v, want %v: a's held change at the end of its interval, b nothing more", told, want)
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
