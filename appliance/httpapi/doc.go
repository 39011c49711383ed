// Package httpapi is mlnode's HTTP interface: a fiber app whose handlers
// bind input, call one service method of package appliance and render the
// result. It owns routing, authentication and roles, the one error envelope
// {"error":{"code","message","field","details"}}, request metrics and the
// Feast-compatible /get-online-features endpoint.
//
// # Caveats
//
//   - Request bodies are streamed (fiber's StreamRequestBody): handlers read
//     them through readBody or bodyReader, which enforce the size limits;
//     c.Body() would read an unbounded stream and is not used.
//   - Values from c.Params, c.Query and headers point into reused buffers:
//     anything kept past the handler is copied (see copyString).
//   - The fiber app is built per Server: two nodes in one process work.
package httpapi
