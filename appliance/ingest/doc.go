// Package ingest turns a request body of feature rows (NDJSON, a JSON array
// of objects, CSV, or a Parquet file through DecodeParquet) into validated [appliance.Row]s of one feature view
// version. It owns the wire rules of ingest: which columns a row may have,
// how each dtype is written in each format, how event times are read, and
// what makes a row invalid, as opposed to a body that cannot be read at all.
//
// Decode streams: it never holds the body twice, and the caller bounds it
// with a size-limiting reader. Invalid rows do not stop it; they are counted
// and described in the [Batch] so that the caller can choose between
// rejecting the batch and writing the valid rows.
//
// JSON is read by a scanner of its own rather than encoding/json: no
// reflection and no map per row, and numbers stay text until their column
// says how to read them, so that int64s above 2^53 keep every digit. It is
// as strict as encoding/json about syntax.
//
// # Caveats
//
//   - Rows of a batch share backing arrays: Row.Values and Row.Key are
//     slices of larger allocations, capped so that appending copies. Keeping
//     one row keeps its neighbours' memory alive until the batch is dropped.
//   - Unix times are seconds when their magnitude is below 1e11 and
//     milliseconds from there: 1e11 seconds is the year 5138, 1e11
//     milliseconds is 1973. Microsecond and nanosecond unix times are not
//     recognised and read as far-future milliseconds, which fail the year
//     range check.
//   - Times finer than a microsecond are truncated towards the past, also
//     for times before 1970, like [appliance.TruncateTime].
//   - An int64 feature may be written as any number with an integral value
//     (3, 3.0, 3e0) or as a string holding one, as protobuf's JSON mapping
//     writes int64s; 3.5 is an error, never rounded. An int64 join key is
//     stricter: digits only, as a number or a string, since a key that
//     went through a float on its way here may have lost digits.
//   - RFC 3339 times may use "t", "z" or a space for "T", as the RFC allows
//     and pandas writes; a leap second (":60") is an error, as in time.Parse.
//   - CSV numbers follow JSON's number syntax, leading zeros allowed; CSV
//     booleans are true, false (any case), 1 and 0.
//   - A CSV header column that is not in the view fails every row, one row
//     error each, just as an unknown JSON member does: it is not a body
//     error, so that the caller's skip-invalid choice stays the caller's.
//   - In CSV an empty cell is a null, so an empty string cannot be written;
//     a quoted "" is the same empty cell.
//   - Strings must be valid UTF-8, in CSV too. In JSON, escaped lone
//     surrogates become U+FFFD, as encoding/json does.
//   - A column that appears twice in one JSON object is a row error, where
//     encoding/json would keep the last one.
//   - A UTF-8 byte order mark at the start of the body is skipped.
package ingest
