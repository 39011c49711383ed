package assign

import (
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/mlnode/mlnode/appliance"
)

// The targeting operators, and the GrowthBook condition operator each one
// is: eq $eq, neq $ne, in $in, nin $nin, lt $lt, lte $lte, gt $gt, gte $gte,
// regex $regex.
const (
	OpEq    = "eq"
	OpNeq   = "neq"
	OpIn    = "in"
	OpNin   = "nin"
	OpLt    = "lt"
	OpLte   = "lte"
	OpGt    = "gt"
	OpGte   = "gte"
	OpRegex = "regex"
)

// Limits on regex patterns. RE2 matches in time linear in the input, but
// the factor is the size of the compiled program, which a short pattern
// with counted repetition can make large ("(a{100}){100}").
const (
	maxPatternBytes = 1024
	maxRegexInsts   = 10000
)

// Rule targets units by one attribute: the unit matches when
// `attribute op value` holds, with the semantics of the SDK's evalCondition
// for that operator (see the package Caveats). Attribute may be a dotted
// path into nested maps ("address.country").
type Rule struct {
	Attribute string `json:"attribute"`
	Op        string `json:"op"`
	Value     any    `json:"value"`
}

type opCode uint8

const (
	opUnknown opCode = iota
	opEq
	opNeq
	opIn
	opNin
	opLt
	opLte
	opGt
	opGte
	opRegex
)

func parseOp(op string) opCode {
	switch op {
	case OpEq:
		return opEq
	case OpNeq:
		return opNeq
	case OpIn:
		return opIn
	case OpNin:
		return opNin
	case OpLt:
		return opLt
	case OpLte:
		return opLte
	case OpGt:
		return opGt
	case OpGte:
		return opGte
	case OpRegex:
		return opRegex
	}
	return opUnknown
}

// Validate reports an EINVALID error naming the field at fault: a missing
// attribute, an unknown op, or a value the op cannot use (eq and neq take a
// string, number, boolean or null; lt to gte a number or string; in and nin
// an array of those; regex a pattern Go's regexp compiles).
func (r Rule) Validate() error {
	return r.validate("")
}

func (r Rule) validate(prefix string) error {
	if r.Attribute == "" {
		return appliance.Invalid(prefix+"attribute", "is required")
	}
	if strings.HasPrefix(r.Attribute, ".") || strings.HasSuffix(r.Attribute, ".") || strings.Contains(r.Attribute, "..") {
		return appliance.Invalid(prefix+"attribute", "%q has an empty part: dots separate nested keys", r.Attribute)
	}
	v := toJS(r.Value)
	switch parseOp(r.Op) {
	case opUnknown:
		return appliance.Invalid(prefix+"op", "%q is not one of eq, neq, in, nin, lt, lte, gt, gte, regex", r.Op)
	case opEq, opNeq:
		if !isScalar(v) {
			return appliance.Invalid(prefix+"value", "must be a string, a finite number, true, false or null for %s", r.Op)
		}
	case opLt, opLte, opGt, opGte:
		if v.kind != kindString && !(v.kind == kindNumber && isFinite(v.n)) {
			return appliance.Invalid(prefix+"value", "must be a finite number or a string for %s", r.Op)
		}
	case opIn, opNin:
		if v.kind != kindArray {
			return appliance.Invalid(prefix+"value", "must be an array for %s", r.Op)
		}
		for i := range arrayLen(v.arr) {
			if !isScalar(arrayAt(v.arr, i)) {
				return appliance.Invalid(fmt.Sprintf("%svalue[%d]", prefix, i), "must be a string, a finite number, true, false or null")
			}
		}
	case opRegex:
		if v.kind != kindString {
			return appliance.Invalid(prefix+"value", "must be a regular expression string for regex")
		}
		if _, err := compileRegex(v.s); err != nil {
			return appliance.Invalid(prefix+"value", "%v", err)
		}
	}
	return nil
}

func isScalar(v jsValue) bool {
	switch v.kind {
	case kindNull, kindBool, kindString:
		return true
	case kindNumber:
		return isFinite(v.n)
	}
	return false
}

func isFinite(f float64) bool {
	return !math.IsNaN(f) && !math.IsInf(f, 0)
}

func compileRegex(pattern string) (*regexp.Regexp, error) {
	if len(pattern) > maxPatternBytes {
		return nil, fmt.Errorf("pattern is longer than %d bytes", maxPatternBytes)
	}
	if what := goOnlySyntax(pattern); what != "" {
		return nil, fmt.Errorf("%q uses %s, which JavaScript reads differently: the SDK would not match as mlnode does", pattern, what)
	}
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("%q is not a Go (RE2) regular expression: %v", pattern, err)
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, fmt.Errorf("%q: %v", pattern, err)
	}
	if len(prog.Inst) > maxRegexInsts {
		return nil, fmt.Errorf("%q compiles to %d instructions, more than %d", pattern, len(prog.Inst), maxRegexInsts)
	}
	return regexp.Compile(pattern)
}

// goOnlySyntax names the first construct of pattern that Go's regexp reads
// and JavaScript's RegExp (without flags) rejects or reads as literal text:
// inline flags and (?P<name>), \p{…}, \A, \z, \Q…\E, \C and POSIX
// classes. Constructs JavaScript has and Go lacks (lookaround,
// backreferences, \u) fail to compile instead.
func goOnlySyntax(pattern string) string {
	for i := 0; i < len(pattern); i++ {
		switch rest := pattern[i:]; {
		case rest[0] == '\\' && len(rest) > 1:
			if strings.IndexByte("pPAzQEC", rest[1]) >= 0 {
				return rest[:2]
			}
			i++
		case strings.HasPrefix(rest, "(?") && len(rest) > 2 && strings.IndexByte(":<=!", rest[2]) < 0:
			return "a (?flags) or (?P<name>) group"
		case strings.HasPrefix(rest, "[[:"):
			return "a POSIX class"
		}
	}
	return ""
}

// Match reports whether the unit with these attributes satisfies the rule.
// A rule that does not validate is evaluated as the SDK would: an unknown
// op, a non-array value for in or nin, and a pattern that does not compile
// match nothing. Match compiles a regex at each call: compile the
// experiment or flag instead on a request path.
func (r Rule) Match(attrs map[string]any) bool {
	m := newMatcher(r)
	return m.match(attrs)
}

// matcher is a Rule ready to evaluate: the path split, the op decoded, the
// value converted and the pattern compiled once. It keeps no reference to
// the rule's slices, so later changes to them do not reach it.
type matcher struct {
	path   []string
	op     opCode
	val    jsValue
	list   []jsValue
	isList bool
	re     *regexp.Regexp // nil: the pattern did not compile, so nothing matches
}

func newMatcher(r Rule) matcher {
	m := matcher{path: strings.Split(r.Attribute, "."), op: parseOp(r.Op), val: toJS(r.Value)}
	switch m.op {
	case opIn, opNin:
		if m.val.kind == kindArray {
			m.isList = true
			m.list = make([]jsValue, arrayLen(m.val.arr))
			for i := range m.list {
				m.list[i] = detach(arrayAt(m.val.arr, i))
			}
		}
		m.val = jsValue{}
	case opRegex:
		if m.val.kind == kindString {
			m.re, _ = compileRegex(m.val.s)
		}
	}
	m.val = detach(m.val)
	return m
}

// detach replaces an array by what the operators can observe of it: it
// equals nothing but itself (an object does the same), and it compares as
// its joined string.
func detach(v jsValue) jsValue {
	if v.kind != kindArray {
		return v
	}
	return jsValue{kind: kindObject, s: toString(v)}
}

func (m *matcher) match(attrs map[string]any) bool {
	a := lookup(attrs, m.path)
	switch m.op {
	case opEq:
		return strictEqual(a, m.val)
	case opNeq:
		return !strictEqual(a, m.val)
	case opLt:
		c, ok := compare(a, m.val)
		return ok && c < 0
	case opLte:
		c, ok := compare(a, m.val)
		return ok && c <= 0
	case opGt:
		c, ok := compare(a, m.val)
		return ok && c > 0
	case opGte:
		c, ok := compare(a, m.val)
		return ok && c >= 0
	case opIn:
		return m.isList && isIn(a, m.list)
	case opNin:
		return m.isList && !isIn(a, m.list)
	case opRegex:
		return m.re != nil && m.re.MatchString(toString(a))
	}
	return false
}

// isIn is the SDK's isIn: an array attribute matches when any of its
// elements is in the list.
func isIn(a jsValue, list []jsValue) bool {
	if a.kind == kindArray {
		for i := range arrayLen(a.arr) {
			e := arrayAt(a.arr, i)
			for _, v := range list {
				if sameValueZero(e, v) {
					return true
				}
			}
		}
		return false
	}
	for _, v := range list {
		if sameValueZero(a, v) {
			return true
		}
	}
	return false
}

// lookup is the SDK's getPath: null unless every part of the path names a
// key of a map.
func lookup(attrs map[string]any, path []string) jsValue {
	var cur any = attrs
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return jsValue{kind: kindNull}
		}
		if cur, ok = m[p]; !ok {
			return jsValue{kind: kindNull}
		}
	}
	return toJS(cur)
}

// matchAll reports whether every matcher holds.
func matchAll(ms []matcher, attrs map[string]any) bool {
	for i := range ms {
		if !ms[i].match(attrs) {
			return false
		}
	}
	return true
}
