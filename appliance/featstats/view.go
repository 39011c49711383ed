package featstats

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/mlnode/mlnode/appliance"
)

// ViewStats are the statistics of one view version's events through ingest
// sequence ThroughSeq. Adding the events ingested after it, or merging the
// statistics of those events, gives the statistics through a later
// sequence: that is how the statistics job keeps them up to date.
type ViewStats struct {
	View       string
	Version    int
	ThroughSeq uint64 // the highest ingest sequence added
	Rows       int64
	ComputedAt time.Time
	Features   []*FeatureStats // in schema order
}

// New returns empty statistics for a view version.
func New(view *appliance.FeatureView) *ViewStats {
	s := &ViewStats{View: view.Name, Version: view.Version, Features: make([]*FeatureStats, len(view.Features))}
	for i, f := range view.Features {
		s.Features[i] = NewFeatureStats(f)
	}
	return s
}

// Key is the view version's "name@N".
func (s *ViewStats) Key() string { return s.View + "@" + strconv.Itoa(s.Version) }

// Matches reports whether s are statistics of the view version's schema.
func (s *ViewStats) Matches(view *appliance.FeatureView) bool {
	if s.View != view.Name || s.Version != view.Version || len(s.Features) != len(view.Features) {
		return false
	}
	for i, f := range view.Features {
		if s.Features[i].Name != f.Name || s.Features[i].Dtype != f.Dtype {
			return false
		}
	}
	return true
}

// Feature returns a feature's statistics, or nil.
func (s *ViewStats) Feature(name string) *FeatureStats {
	for _, f := range s.Features {
		if f.Name == name {
			return f
		}
	}
	return nil
}

// Add adds one event, given its ingest sequence and its values in schema
// order. An event that does not fit the schema is refused whole.
func (s *ViewStats) Add(seq uint64, values []appliance.Value) error {
	if len(values) != len(s.Features) {
		return fmt.Errorf("statistics of %s: an event with %d values for %d features", s.Key(), len(values), len(s.Features))
	}
	for i := range values {
		if k := values[i].Kind; k != appliance.KindNull && k != s.Features[i].Dtype.Kind() {
			return fmt.Errorf("statistics of %s: event %d: feature %s (%s) has a value of kind %d", s.Key(), seq, s.Features[i].Name, s.Features[i].Dtype, k)
		}
	}
	for i := range values {
		// Kinds were checked above, so no error is left to report.
		_ = s.Features[i].Add(values[i])
	}
	s.Rows++
	s.ThroughSeq = max(s.ThroughSeq, seq)
	return nil
}

// Merge adds o's statistics to s. Both must be of the same view version;
// the result reaches the later of the two sequences.
func (s *ViewStats) Merge(o *ViewStats) error {
	if s.View != o.View || s.Version != o.Version || len(s.Features) != len(o.Features) {
		return fmt.Errorf("merge statistics of %s with %s", s.Key(), o.Key())
	}
	for i := range s.Features {
		if err := s.Features[i].Merge(o.Features[i]); err != nil {
			return fmt.Errorf("merge statistics of %s: %w", s.Key(), err)
		}
	}
	s.Rows += o.Rows
	s.ThroughSeq = max(s.ThroughSeq, o.ThroughSeq)
	if o.ComputedAt.After(s.ComputedAt) {
		s.ComputedAt = o.ComputedAt
	}
	return nil
}

const viewFormat = 1

// MarshalBinary encodes the statistics with every accumulator's state.
// ComputedAt keeps microseconds.
func (s *ViewStats) MarshalBinary() ([]byte, error) {
	b := []byte{viewFormat}
	b = appendString(b, s.View)
	b = binary.AppendUvarint(b, uint64(s.Version))
	b = binary.AppendUvarint(b, s.ThroughSeq)
	b = binary.AppendUvarint(b, uint64(s.Rows))
	b = binary.AppendVarint(b, s.ComputedAt.UnixMicro())
	b = binary.AppendUvarint(b, uint64(len(s.Features)))
	var buf []byte
	for _, f := range s.Features {
		buf = f.appendBinary(buf[:0])
		b = appendBytes(b, buf)
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary encoded.
func (s *ViewStats) UnmarshalBinary(data []byte) error {
	d := &decoder{b: data}
	if f := d.byte(); d.err == nil && f != viewFormat {
		return fmt.Errorf("view statistics: unknown format %d", f)
	}
	n := ViewStats{View: d.string()}
	version := d.uvarint()
	n.ThroughSeq, n.Rows = d.uvarint(), d.count()
	n.ComputedAt = microsTime(d.varint())
	count := d.uvarint()
	if d.err != nil {
		return fmt.Errorf("view statistics: %w", d.err)
	}
	if version > math.MaxInt32 || count > appliance.MaxFeatures {
		return fmt.Errorf("view statistics of %s: version %d with %d features", n.View, version, count)
	}
	n.Version = int(version)
	n.Features = make([]*FeatureStats, count)
	for i := range n.Features {
		fd := &decoder{b: d.bytes()}
		if d.err != nil {
			return fmt.Errorf("view statistics of %s: %w", n.Key(), d.err)
		}
		n.Features[i] = &FeatureStats{}
		if err := n.Features[i].decode(fd); err != nil {
			return fmt.Errorf("view statistics of %s: %w", n.Key(), err)
		}
		if err := fd.done(); err != nil {
			return fmt.Errorf("view statistics of %s: feature %s: %w", n.Key(), n.Features[i].Name, err)
		}
		if c := n.Features[i].Count + n.Features[i].Nulls; c != n.Rows {
			return fmt.Errorf("view statistics of %s: feature %s counts %d events of %d", n.Key(), n.Features[i].Name, c, n.Rows)
		}
	}
	if err := d.done(); err != nil {
		return fmt.Errorf("view statistics of %s: %w", n.Key(), err)
	}
	*s = n
	return nil
}

// Record encodes the statistics for a FeatureStatsStore.
func (s *ViewStats) Record() (*appliance.FeatureStatsRecord, error) {
	state, err := s.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &appliance.FeatureStatsRecord{View: s.View, Version: s.Version, ThroughSeq: s.ThroughSeq, Rows: s.Rows,
		ComputedAt: appliance.TruncateTime(s.ComputedAt), State: state}, nil
}

// FromRecord decodes statistics from a FeatureStatsStore.
func FromRecord(r *appliance.FeatureStatsRecord) (*ViewStats, error) {
	s := &ViewStats{}
	if err := s.UnmarshalBinary(r.State); err != nil {
		return nil, err
	}
	if s.View != r.View || s.Version != r.Version || s.ThroughSeq != r.ThroughSeq || s.Rows != r.Rows {
		return nil, fmt.Errorf("statistics record of %s@%d (seq %d, %d rows) holds those of %s (seq %d, %d rows)",
			r.View, r.Version, r.ThroughSeq, r.Rows, s.Key(), s.ThroughSeq, s.Rows)
	}
	return s, nil
}
