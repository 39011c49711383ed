package store

// OnlineCacheForTest reports the online cache's hits, misses and bytes.
func (s *Store) OnlineCacheForTest() (hits, misses uint64, used int64) {
	if s.online == nil {
		return 0, 0, 0
	}
	for _, vc := range *s.online.views.Load() {
		for i := range vc.shards {
			hits += vc.shards[i].hits.Load()
			misses += vc.shards[i].misses.Load()
		}
	}
	return hits, misses, s.online.used.Load()
}
