// Regenerates the Parquet fixtures of this directory with DuckDB, a writer
// independent of parquet-go, so that the reader is tested on files it did
// not write:
//
//	d=appliance/tabular/testdata/duckdb; t=$(mktemp -d); cp $d/gen.mjs $t && \
//	  (cd $t && npm i @duckdb/node-api@1.5.6-r.1) && node $t/gen.mjs $PWD/$d
//
// (the script runs from the temporary directory, where node finds DuckDB).
import { DuckDBInstance } from '@duckdb/node-api';

const dir = process.argv[2];
const db = await DuckDBInstance.create(':memory:');
const c = await db.connect();
const run = (q) => c.run(q);

// types: one column per Parquet type a file may hold; three rows, the last
// all null.
await run(`CREATE TYPE mood AS ENUM ('happy', 'sad')`);
await run(`CREATE TABLE types AS SELECT * FROM (VALUES
  (1::INTEGER, 18446744073709551615::UBIGINT, 7::UBIGINT, -5::TINYINT, 65000::USMALLINT, DATE '2024-02-29',
   TIMESTAMP '2024-01-02 03:04:05.123456', TIMESTAMPTZ '2024-01-02 03:04:05.123456+00',
   '2024-01-02 03:04:05.123456789'::TIMESTAMP_NS, '2024-01-02 03:04:05.123'::TIMESTAMP_MS,
   1.5::FLOAT, 2.25::DOUBLE, 'héllo'::VARCHAR, 'sad'::mood, '\\x00\\xFF'::BLOB, '00112233-4455-6677-8899-aabbccddeeff'::UUID,
   [1, 2, 3]::INTEGER[], ['a', NULL]::VARCHAR[], [1.5, 2]::DOUBLE[], []::BIGINT[], 12.34::DECIMAL(10,2),
   {'a': 1, 'b': 'x'}, MAP {'k': 1}, TIME '12:00:00', [[1], [2, 3]]::INTEGER[][], [true]::BOOLEAN[], true),
  (-2147483648, 0, 9223372036854775807, 127, 0, DATE '1970-01-01',
   TIMESTAMP '1969-12-31 23:59:59.999999', TIMESTAMPTZ '1970-01-01 00:00:00+00',
   '1969-12-31 23:59:59.999999999'::TIMESTAMP_NS, '1970-01-01 00:00:00.001'::TIMESTAMP_MS,
   -0.0, 1e300, '', 'happy', ''::BLOB, NULL,
   [], [], NULL, [9223372036854775807], -0.01,
   NULL, NULL, NULL, [], [], false),
  (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
) t(i32, u64max, u64, i8, u16, d, ts, tstz, tsns, tsms, f32, f64, s, e, bl, uu,
    ints, strs, dbls, bigs, dec, st, m, tod, nested, bools, b)`);
await run(`COPY types TO '${dir}/types.parquet' (FORMAT parquet, COMPRESSION snappy)`);

// codecs: the same 5000 rows in row groups of 2048 (DuckDB's smallest) under each codec.
await run(`CREATE TABLE codec AS SELECT i::BIGINT AS k, 'r' || (i % 100) AS s, i / 7 AS x,
  CASE WHEN i % 10 = 0 THEN NULL ELSE [i, i + 1] END AS l FROM range(5000) r(i)`);
for (const codec of ['uncompressed', 'snappy', 'gzip', 'zstd', 'brotli', 'lz4']) {
  await run(`COPY codec TO '${dir}/codec_${codec}.parquet' (FORMAT parquet, COMPRESSION ${codec}, ROW_GROUP_SIZE 2048)`);
}
