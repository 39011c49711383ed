// Package appliance is the domain of mlnode: the nouns of a feature store,
// model registry and experimentation platform, their validation rules, the
// typed errors every layer shares, and the service interfaces that the
// storage, runtime and scheduler packages implement.
//
// It imports nothing of mlnode's own and no storage, runtime or HTTP library:
// a handler talks to these interfaces, and an implementation never sees a
// request.
//
// # Caveats
//
//   - Values handed to a service are owned by the service once the call
//     returns successfully; callers must not mutate them afterwards.
//   - Time is always UTC with microsecond precision once stored: finer
//     precision in input is truncated (see [TruncateTime]).
package appliance
