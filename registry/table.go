package registry

import "sync/atomic"

// atomicTable is a copy-on-write map of model name to Model: readers load
// it without locks; writers (serialized by Repository.loadMu) store a copy.
type atomicTable struct {
	p atomic.Pointer[map[string]*Model]
}

func (t *atomicTable) load() map[string]*Model { return *t.p.Load() }

func (t *atomicTable) store(m map[string]*Model) { t.p.Store(&m) }

func (t *atomicTable) with(name string, m *Model) {
	old := t.load()
	next := make(map[string]*Model, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[name] = m
	t.store(next)
}

func (t *atomicTable) without(name string) {
	old := t.load()
	next := make(map[string]*Model, len(old))
	for k, v := range old {
		if k != name {
			next[k] = v
		}
	}
	t.store(next)
}
