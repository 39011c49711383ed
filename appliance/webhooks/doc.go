// Package webhooks delivers events to the webhooks admins subscribed: it
// implements appliance.Notifier (queue durably, deliver later) and
// appliance.WebhookService on top of any appliance.WebhookStore, which holds
// the outbox, so that it knows nothing of bbolt.
//
// One goroutine, owned by the Sender between Start and Close, reads what is
// due from the outbox and hands each delivery to a worker; at most
// Options.Concurrency requests are in flight, and at most two per webhook so
// that one slow receiver cannot hold every slot. Each attempt is a signed
// POST (see Sign and docs/webhooks.md); a 2xx answer delivers, anything else
// schedules a retry after an exponential backoff with full jitter, until
// Options.MaxAttempts attempts have failed.
//
// # Caveats
//
//   - Delivery is at least once: a receiver may see a delivery again after a
//     crash between its answer and the record of it, or after a timeout it
//     answered late. X-Mlnode-Delivery and the event id tell repeats apart.
//   - Deliveries are not ordered: retries and parallel requests reorder them.
//     Receivers that care order by the payload's "time".
//   - The outbox's due times come from the store's clock and are compared
//     with the Sender's: give both the same Now.
//   - Redirects are never followed (a 3xx counts as a failure): a signed
//     payload must not be forwarded to a host the admin did not name.
//   - A request cut short by Close is not counted as an attempt; the
//     delivery stays pending and goes out after the next Start.
package webhooks
