// Package tabular writes tables of feature values as JSON, NDJSON, CSV and
// Parquet, and reads Parquet files made elsewhere. Historical retrieval and
// export stream through its writers; ingest reads Parquet bodies through
// its reader. It owns how each dtype is written in each format and how
// outside Parquet types map to dtypes (docs/parquet.md has the table).
//
// Writers stream: memory is bounded whatever the number of rows. Text
// writers flush every 64 KiB; the Parquet writer builds parquet-go values
// straight from appliance values, column by column, and cuts a row group
// every 65,536 rows or 64 MiB. Values render as the HTTP API renders them:
// timestamps RFC 3339 in UTC, bytes in base64, lists as JSON arrays.
//
// The reader does not trust the file. parquet-go allocates what the footer
// and page headers claim, so OpenParquet walks the footer and Scan walks
// the page headers of each row group before parquet-go sees them, holding
// every length to the bytes that are there and to fixed limits; panics
// inside parquet-go become errors.
//
// # Caveats
//
//   - A Parquet table is only valid once Close returned nil: the footer is
//     written last. A failed export leaves a file no reader opens.
//   - Parquet columns are all optional and lists have required elements;
//     column order is the order given, not parquet-go's sorted order.
//   - CSV lines end in "\n", not RFC 4180's "\r\n"; a null is an empty cell
//     and an empty string a quoted one, "". Lists are JSON text in a cell.
//   - JSON strings of printable ASCII are written as they are, others as
//     encoding/json writes them (<, > and & escaped), exactly like the
//     HTTP API.
//   - TIMESTAMP columns not adjusted to UTC (local times) are read as if
//     their wall clock were UTC; nanoseconds are truncated towards the
//     past; INT96 is read as Impala and Spark write it.
//   - Unsupported on read: LZ4 and LZ4_RAW compression (parquet-go v0.32.0
//     misreads LZ4_RAW pages), LZO, encryption, decimals, times of day,
//     structs, maps, lists of anything but integers, floats and strings,
//     and column chunks in other files. Columns Scan is not asked for are
//     not read, so such columns are only a problem when wanted.
//   - Reading costs a second decompression of gzip, brotli and zstd pages,
//     which is how the guard knows a page expands to what it says.
//   - parquet-go prints a warning line to standard error for some corrupt
//     byte array pages (a println this package cannot silence); the file
//     is then read or refused by the usual rules.
//   - Row counts come from the footer but are checked against the pages:
//     when no column is asked for, Scan still reads one to count rows.
package tabular
