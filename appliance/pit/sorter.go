package pit

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"slices"
)

// sorter sorts byte records (compared whole, bytewise) within a memory
// budget: records collect in one arena; when it is full they are sorted and
// written to a run file, and the runs are merged at the end. A sort that
// fits the budget never touches the disk.
type sorter struct {
	dir    string
	budget int

	arena []byte
	recs  []recRef
	runs  []*os.File
	w     *bufio.Writer
}

// recRef is a record's place in the arena. The first 8 bytes of the record
// are kept beside it, so that most comparisons never leave this slice.
type recRef struct {
	prefix uint64
	off    uint32
	n      uint32
}

func newSorter(dir string, budget int) *sorter {
	// Tiny budgets are allowed (tests use them to force spilling); the
	// records themselves may exceed them.
	budget = max(budget, 1<<10)
	return &sorter{dir: dir, budget: budget}
}

func prefixOf(rec []byte) uint64 {
	var p [8]byte
	copy(p[:], rec)
	return binary.BigEndian.Uint64(p[:])
}

// add copies rec in.
func (s *sorter) add(rec []byte) error {
	if len(s.arena)+len(rec) > s.budget && len(s.recs) > 0 || len(s.arena)+len(rec) > 1<<32-1 {
		if err := s.spill(); err != nil {
			return err
		}
	}
	if s.arena == nil {
		s.arena = make([]byte, 0, min(s.budget, 1<<20))
	}
	s.recs = append(s.recs, recRef{prefix: prefixOf(rec), off: uint32(len(s.arena)), n: uint32(len(rec))})
	s.arena = append(s.arena, rec...)
	return nil
}

func (s *sorter) rec(r recRef) []byte { return s.arena[r.off : r.off+r.n] }

func (s *sorter) sortMemory() {
	slices.SortFunc(s.recs, func(a, b recRef) int {
		if a.prefix != b.prefix {
			if a.prefix < b.prefix {
				return -1
			}
			return 1
		}
		return bytes.Compare(s.rec(a), s.rec(b))
	})
}

// spill writes the arena's records, sorted, to a new run file.
func (s *sorter) spill() error {
	s.sortMemory()
	f, err := os.CreateTemp(s.dir, "mlnode-sort-*")
	if err != nil {
		return fmt.Errorf("spill sort run: %w", err)
	}
	// Unlinked at once: the file lives as long as its descriptor, so that
	// nothing is left behind whatever happens to the process.
	_ = os.Remove(f.Name())
	s.runs = append(s.runs, f)
	if s.w == nil {
		s.w = bufio.NewWriterSize(f, 1<<20)
	} else {
		s.w.Reset(f)
	}
	var hdr [binary.MaxVarintLen64]byte
	for _, r := range s.recs {
		n := binary.PutUvarint(hdr[:], uint64(r.n))
		if _, err := s.w.Write(hdr[:n]); err != nil {
			return fmt.Errorf("spill sort run: %w", err)
		}
		if _, err := s.w.Write(s.rec(r)); err != nil {
			return fmt.Errorf("spill sort run: %w", err)
		}
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("spill sort run: %w", err)
	}
	s.arena, s.recs = s.arena[:0], s.recs[:0]
	return nil
}

// spilled reports whether the sort went to disk.
func (s *sorter) spilled() bool { return len(s.runs) > 0 }

// iterator returns the records in order. The sorter must not be added to
// afterwards; close releases the run files.
func (s *sorter) iterator() (recordIter, error) {
	if len(s.runs) == 0 {
		s.sortMemory()
		return &memIter{s: s}, nil
	}
	if len(s.recs) > 0 {
		if err := s.spill(); err != nil {
			return nil, err
		}
	}
	s.arena, s.recs = nil, nil
	m := &mergeIter{}
	// Read buffers share the budget between runs.
	bufSize := max(64<<10, s.budget/(2*len(s.runs)))
	for _, f := range s.runs {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		src := &runReader{r: bufio.NewReaderSize(f, bufSize), f: f}
		ok, err := src.next()
		if err != nil {
			return nil, err
		}
		if ok {
			m.h = append(m.h, src)
		} else {
			f.Close()
		}
	}
	heap.Init(&m.h)
	s.runs = nil
	return m, nil
}

func (s *sorter) close() {
	for _, f := range s.runs {
		f.Close()
	}
	s.runs, s.arena, s.recs = nil, nil, nil
}

// recordIter yields sorted records; a record is valid until the next call.
type recordIter interface {
	next() ([]byte, bool, error)
	close()
}

type memIter struct {
	s *sorter
	i int
}

func (m *memIter) next() ([]byte, bool, error) {
	if m.i >= len(m.s.recs) {
		return nil, false, nil
	}
	r := m.s.rec(m.s.recs[m.i])
	m.i++
	return r, true, nil
}

func (m *memIter) close() { m.s.arena, m.s.recs = nil, nil }

// split divides the sorted records into up to n ranges that never cut one
// entity's requests apart (records are entity key | time | row: the key is
// all but the last 16 bytes), and returns each range's first entity key.
func (m *memIter) split(n int) ([]recordIter, [][]byte) {
	recs := m.s.recs
	var its []recordIter
	var starts [][]byte
	lo := 0
	for k := 1; k <= n && lo < len(recs); k++ {
		hi := len(recs) * k / n
		if hi <= lo {
			continue
		}
		if hi < len(recs) {
			key := func(i int) []byte { r := m.s.rec(recs[i]); return r[:len(r)-16] }
			for hi < len(recs) && bytes.Equal(key(hi), key(hi-1)) {
				hi++
			}
		}
		first := m.s.rec(recs[lo])
		its = append(its, &rangeIter{s: m.s, i: lo, end: hi})
		starts = append(starts, first[:len(first)-16])
		lo = hi
	}
	return its, starts
}

// rangeIter walks recs[i:end] of a sorted in-memory sorter; closing it
// leaves the sorter's memory to whoever closes the sorter.
type rangeIter struct {
	s      *sorter
	i, end int
}

func (r *rangeIter) next() ([]byte, bool, error) {
	if r.i >= r.end {
		return nil, false, nil
	}
	rec := r.s.rec(r.s.recs[r.i])
	r.i++
	return rec, true, nil
}

func (r *rangeIter) close() {}

// multiIter merges sorted iterators. The source of the record returned
// last is advanced only at the next call, so that record stays valid.
type multiIter struct {
	its  []recordIter
	cur  [][]byte
	last int
}

func newMultiIter(its []recordIter) *multiIter {
	return &multiIter{its: its, cur: make([][]byte, len(its)), last: -1}
}

func (m *multiIter) next() ([]byte, bool, error) {
	for i := range m.its {
		if m.cur[i] == nil && (m.last == -1 || m.last == i) {
			rec, ok, err := m.its[i].next()
			if err != nil {
				return nil, false, err
			}
			if ok {
				m.cur[i] = rec
			} else {
				m.cur[i] = []byte{} // exhausted: never nil again
			}
		}
	}
	best := -1
	for i, rec := range m.cur {
		if len(rec) > 0 && (best < 0 || bytes.Compare(rec, m.cur[best]) < 0) {
			best = i
		}
	}
	m.last = best
	if best < 0 {
		return nil, false, nil
	}
	rec := m.cur[best]
	m.cur[best] = nil
	return rec, true, nil
}

func (m *multiIter) close() {
	for _, it := range m.its {
		it.close()
	}
}

type runReader struct {
	r   *bufio.Reader
	f   *os.File
	cur []byte
}

func (r *runReader) next() (bool, error) {
	n, err := binary.ReadUvarint(r.r)
	if err == io.EOF {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read sort run: %w", err)
	}
	if cap(r.cur) < int(n) {
		r.cur = make([]byte, n)
	}
	r.cur = r.cur[:n]
	if _, err := io.ReadFull(r.r, r.cur); err != nil {
		return false, fmt.Errorf("read sort run: %w", err)
	}
	return true, nil
}

type runHeap []*runReader

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return bytes.Compare(h[i].cur, h[j].cur) < 0 }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type mergeIter struct {
	h   runHeap
	top *runReader // the source of the record returned last, not yet advanced
}

func (m *mergeIter) next() ([]byte, bool, error) {
	if m.top != nil {
		// Advance the source of the previous record only now, so that the
		// record stayed valid until this call.
		ok, err := m.top.next()
		if err != nil {
			return nil, false, err
		}
		if ok {
			heap.Fix(&m.h, 0)
		} else {
			m.top.f.Close()
			heap.Pop(&m.h)
		}
		m.top = nil
	}
	if len(m.h) == 0 {
		return nil, false, nil
	}
	m.top = m.h[0]
	return m.top.cur, true, nil
}

func (m *mergeIter) close() {
	for _, r := range m.h {
		r.f.Close()
	}
	m.h = nil
}
