package pit

// SetParallelMin lowers the size at which a join splits, so that tests
// exercise the concurrent path on small data; it returns the restore.
func SetParallelMin(n int) func() {
	old := parallelMin
	parallelMin = n
	return func() { parallelMin = old }
}
