package store

// DirtyPageBytes is the bytes of pages every write transaction so far has
// allocated at commit: what the benchmarks report as written per fold.
func (s *Store) DirtyPageBytes() int64 {
	st := s.db.Stats()
	return st.TxStats.GetPageAlloc()
}
