// Package ledger is imdsguard's memory in DynamoDB: it makes the remediate Lambda
// idempotent (a redelivered SQS message is a no-op), keeps the metadata options an
// instance had before imdsguard first changed them (so that a rollback restores the
// original, not an intermediate state) and keeps the audit trail of every outcome.
//
// # Table
//
// One table, created by the SAM template: partition key pk (S), sort key sk (S),
// on-demand billing, TTL enabled on the attribute named by [TTLAttribute]. There are no
// secondary indexes; every access is by key.
//
// # Items
//
// Decision item, one per decision id (the verdict message's decision_id). detect writes
// it, through package decisionlog, before it queues the message; remediate claims and
// completes it:
//
//	pk            S  DECISION#<decision id>
//	sk            S  DECISION
//	type          S  decision
//	decision_id   S
//	account_id    S  \
//	region        S   } the instance the decision is about
//	instance_id   S  /
//	action        S  the verdict's action, as detect recorded it
//	created_at    S  when detect made the decision (see Times)
//	digest        S  SHA-256 (hex) of the message body detect queued
//	status        S  recorded | claimed | released | failed | done
//	attempts      N  how many times the decision was claimed (absent until the first)
//	claimed_at    S  time of the latest claim (RFC 3339, see Times)
//	claim_until   N  Unix milliseconds at which the latest claim expires; 0 when not held
//	result        S  the Result* of the latest recorded outcome
//	recorded_at   S  time of that outcome
//	outcome_sk    S  sk of that outcome's history item
//	expires_at    N  TTL: Unix seconds, 90 days ([DecisionRetention]) after the latest write
//
// detect writes the item with a conditional PutItem (attribute_not_exists(pk)), so a
// recorded decision is never rewritten. Claim succeeds only when the item exists, its
// digest and instance are the message's, it is not done and its claim has expired
// (claim_until <= now): a message that detect did not record ([ErrNotRecorded]), or
// whose body or instance differs from the record ([ErrAltered]), can never be claimed,
// and so never acted on. Release sets status released and claim_until 0, only while
// claimed, so a done decision stays done. Record sets status done (failed for
// [ResultFailed], so that the retry can claim it again at once) and claim_until 0, in the
// same TransactWriteItems as the history item and on condition that the decision exists
// and is not done yet.
//
// Decision items are needed only for as long as SQS may deliver the message (at most 14
// days of retention), so DynamoDB's TTL deletes them 90 days after their last write and
// the idempotency records do not grow forever. (TTL deletion is lazy, usually within days
// of the expiry: until then an expired item is still honoured, which is harmless.)
//
// Outcome (history) items, one per recorded outcome, kept without expiry as the audit
// trail:
//
//	pk            S  INSTANCE#<account id>#<region>#<instance id>
//	sk            S  OUTCOME#<at, fixed-width RFC 3339 UTC>#<decision id>
//	type          S  outcome
//	account_id, region, instance_id, decision_id  S
//	at            S  time of the outcome
//	action        S  the verdict's action (remediate, ticket, defer, skip)
//	result        S  one of the Result* constants
//	mode          S  report | dry-run | enforce (absent when empty)
//	reasons       L  of M {code S, detail S (absent when empty)}; absent when there are
//	                 none (an empty Reasons reads back as nil)
//	prior         M  {http_tokens S, hop_limit N, http_endpoint S, state S}; absent when
//	                 nil; empty strings are left out of the map
//	applied       M  same shape as prior; absent when nil
//	detail        S  free text (absent when empty)
//
// Snapshot item, one per instance, under the same partition key as its history:
//
//	pk            S  INSTANCE#<account id>#<region>#<instance id>
//	sk            S  SNAPSHOT
//	type          S  snapshot
//	account_id, region, instance_id, decision_id  S  (decision_id: the decision that took it)
//	at            S  when it was taken
//	options       M  {http_tokens S, hop_limit N, http_endpoint S, state S}
//
// It is written once (PutItem with attribute_not_exists(pk)) and never overwritten, so
// that an enforcement after a rollback cannot replace the original options.
//
// History reads one instance with a Query on pk and begins_with(sk, "OUTCOME#"),
// ascending, strongly consistent and paginated; the snapshot in the same partition is not
// part of it.
//
// Budget counter items, one per account-region and clock hour and one per account-region
// and sweep, each taken with one conditional UpdateItem (see budget.go and TakeBudget):
//
//	pk          S  BUDGET#<account id>#<region>
//	sk          S  HOUR#<hour, 2006-01-02T15Z> | SWEEP#<sweep id>
//	type        S  budget
//	used        N  enforcement slots taken
//	expires_at  N  TTL: Unix seconds, 48 hours ([BudgetRetention]) after the hour
//
// # Times
//
// Times are stored as strings in RFC 3339 form, in UTC, always with nine fractional
// digits ("2026-11-22T10:00:00.500000000Z"): time.RFC3339Nano drops trailing zeros,
// which would make lexical order differ from time order ("...00.5Z" would sort after
// "...00.55Z"), and the history relies on sk sorting by time. They parse back with
// time.RFC3339Nano and are returned in UTC. Claim expiry is compared by DynamoDB in a
// condition expression, so it is stored as a number (claim_until).
//
// # Claims and crashes
//
// A claim is not owned by a token: the claim lasts ttl, which the caller sets to the
// queue's visibility timeout, and SQS does not redeliver the message before that timeout
// has passed. The remediate function's own timeout must therefore be shorter than the
// visibility timeout, so that an invocation is dead before its claim can be taken over.
//
// # IAM
//
// remediate: dynamodb:GetItem, dynamodb:PutItem, dynamodb:UpdateItem, dynamodb:DeleteItem
// (tickets) and dynamodb:Query on the table: Record's TransactWriteItems is authorised by
// the PutItem and UpdateItem permissions of its parts. detect: dynamodb:PutItem on
// DECISION# partitions only (dynamodb:LeadingKeys), and dynamodb:Query for the open
// tickets.
package ledger
