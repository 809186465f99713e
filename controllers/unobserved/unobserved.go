// Package unobserved remembers the writes this process made that its cache has not observed yet,
// so that a reconcile running before the cache has seen its previous write does not send the same
// write again. Reconciles stay level-based: a
// write is skipped only while the cache still shows the object exactly as it was before that write
// (same resourceVersion); any other version, ours or someone else's, is compared as usual.
package unobserved

import (
	"crypto/sha256"
	"encoding/json"
	"sync"
)

// Key names one written thing: an object, or an object's status.
type Key struct {
	Kind, Namespace, Name, Part string
}

// Writes is safe for concurrent use; the zero value is ready.
type Writes struct {
	mu     sync.Mutex
	writes map[Key]write
}

type write struct {
	hash   [sha256.Size]byte
	before string // resourceVersion the object had when it was written; "" when it did not exist
}

// Hash summarises what a write sends.
func Hash(v any) [sha256.Size]byte {
	data, _ := json.Marshal(v)
	return sha256.Sum256(data)
}

// Begin reports whether content must be written to key now, the cache showing resourceVersion
// cached, and if so records it as written (Forget it if the write fails): not when the same
// content was written, or is being written, since the cache showed cached. Two reconciles that
// want the same object at once (a namespace's allow-nothing policy, which every TrafficTarget
// there wants) then write it once.
func (w *Writes) Begin(key Key, content [sha256.Size]byte, cached string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pending(key, content, cached) {
		return false
	}
	w.record(key, content, cached)
	return true
}

// record notes that content was written to key while the cache showed resourceVersion before.
func (w *Writes) record(key Key, content [sha256.Size]byte, before string) {
	if w.writes == nil {
		w.writes = map[Key]write{}
	}
	w.writes[key] = write{hash: content, before: before}
}

// pending reports whether content was already written to key and the cache, showing
// resourceVersion cached, has not seen that write yet. Once the cache moved on, the record is
// dropped.
func (w *Writes) pending(key Key, content [sha256.Size]byte, cached string) bool {
	last, ok := w.writes[key]
	if !ok {
		return false
	}
	if cached != last.before {
		delete(w.writes, key)
		return false
	}
	return last.hash == content
}

// Forget drops what is known of key: the cache has caught up with the write (it shows the object
// as written), or the object was deleted, after which the cache showing no object must not pass
// for "the write is not seen yet".
func (w *Writes) Forget(key Key) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.writes, key)
}
