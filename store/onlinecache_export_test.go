package store

// OnlineCacheForTest reports the online cache's hits, misses and bytes.
func (s *Store) OnlineCacheForTest() (hits, misses uint64, used int64) {
	if s.online == nil {
		return 0, 0, 0
	}
	return s.online.hits.Get(), s.online.misses.Get(), s.online.used.Load()
}
