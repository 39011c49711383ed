// Package assign decides which variation of an experiment or feature flag a
// unit (a user, a device) gets, exactly as the GrowthBook JavaScript SDK
// does, so that a data scientist can recompute any assignment outside the
// node from the unit id, the seed and the weights (docs/experiments.md).
//
// It owns hashing (FNV-1a over UTF-16 code units, hash versions 1 and 2),
// bucket ranges and coverage, namespaces (mutually exclusive layers),
// targeting rules, forced units, and flag evaluation. It is pure: no state,
// no clock, no I/O. [Compile] and [CompileFlag] validate a definition and
// precompute its ranges and patterns once, so that [Compiled.Assign] and
// [CompiledFlag.Evaluate] do not allocate; [Assign] and [Evaluate] take the
// definition as it is, with the SDK's fallbacks, for one-off use.
//
// # Caveats
//
//   - Assignments equal the JavaScript SDK's, not GrowthBook's Go SDK's: that
//     one hashes UTF-8 bytes, so any id with a non-ASCII character lands
//     elsewhere. The Python SDK hashes code points and differs only for
//     characters outside the Basic Multilingual Plane (emoji).
//   - A string that is not valid UTF-8 hashes each bad byte as U+FFFD, as
//     Go's own UTF-16 conversion does; JavaScript strings cannot hold such
//     bytes, and a lone surrogate cannot be expressed in a Go string.
//   - Coverage is taken literally: 0 lets no unit in. The SDK's default of 1
//     for a missing coverage is the caller's to apply.
//   - HashVersion 0 means 1, as in the SDK. Version 1 correlates the splits
//     of experiments whose seeds differ only at the end; new experiments
//     should set 2.
//   - Conditions follow the SDK's JavaScript semantics, including its
//     surprises: a missing attribute is null, which compares as 0 (so
//     {"age" lt 10} holds for a unit without an age) and a regex tests it as
//     the text "null"; eq is strict (the number 1 is not the string "1")
//     while lt/gt convert a numeric string to a number.
//   - Regex patterns must be valid in both Go (RE2) and JavaScript: Go lacks
//     lookaround, backreferences and \u00e9 (write \x{e9}), and constructs
//     only Go reads — (?i), \p{L}, \A, \z, [[:alpha:]] — are refused. \s is
//     ASCII space only, and the match runs on code points, so "." matches
//     one emoji where JavaScript needs two. Patterns over 1024 bytes or
//     compiling to more than 10,000 instructions are refused.
//   - Rule.Match compiles a regex at every call; compile the experiment or
//     flag for anything on a request path.
package assign
