package assign

// Namespace makes experiments mutually exclusive: experiments that share an
// ID and have disjoint [Start, End) never share a unit, because a unit's
// namespace position does not depend on any experiment's seed.
type Namespace struct {
	ID         string
	Start, End float64
}

// InNamespace reports whether the unit's namespace position, hash version 1
// with seed "__"+ns.ID (fnv(unitID + "__" + ns.ID) % 1000 / 1000), is in
// [ns.Start, ns.End).
func InNamespace(unitID string, ns Namespace) bool {
	h := fnv1a(fnv1a(fnv1a(fnvOffset, unitID), "__"), ns.ID)
	n := float64(h%1000) / 1000
	return n >= ns.Start && n < ns.End
}
