"""The DynamoDB store: one table (single-table design), one module per aggregate composed into
one unit of work.

    store          `DynamoStore`, the URL, `ensure_table` / `table_definition` (what `paywire
                   migrate` and the SAM template use)
    unit           `DynamoUnitOfWork`, composed of the aggregate classes below
    base           the overlay of buffered writes, the one-transaction commit, leased claims,
                   lookup items
    orders, refunds, history, outbox, operations, idempotency, inbox, rejections, truth,
    reconcile      one aggregate's reads and writes each
    items, records, webhook_items   item layout: keys, indexes, record <-> item (pure)
    backfill       the by_order keys of items written before them, added by `paywire migrate`
    expr, table    condition expressions; the boto3 client calls and error mapping

Items (every one has `pk`, `sk` and `kind`; absent values are absent attributes):

    pk                              sk            kind         what
    ORDER#<id>                      ORDER         order        the order, its lines inside
    ORDER#<id>                      H#<at>#<seq>  history      one history line
    ORDER#<id>                      RECON         reconcile    reconciliation backoff state
    OUTBOX#<msg>                    OUTBOX        outbox       an announcement (message)
    REFUND#<rid>                    REFUND        refund       a refund
    OP#<key>                        OP            operation    a provider operation
    IDEM#<scope>#<key>              IDEM          idempotency  an Idempotency-Key (TTL)
    INBOX#<provider>#<event>        INBOX         inbox        a stored event, body as Binary
    REJ#<provider>#<transmission>   REJ           rejection    a refused delivery (TTL)
    TRUTH#<task>                    TRUTH         truth        a truth-fetch task
    PPID#<provider>#<order id>      LOOKUP        lookup       unique: provider order -> order
    PAYID#<provider>#<pay id>       LOOKUP        lookup       capture/authorization -> order
    RFID#<provider refund id>       LOOKUP        lookup       provider refund -> refund
    OUTKEY#<announcement key>       LOOKUP        lookup       unique: fact key -> message
    (the removed item's)            (its)         tombstone    a removal, until TTL deletes it

Components are ids as given, or "~<sha256>" for long ones or ones containing '#'. Times are
fixed-width ISO-8601 UTC text with microseconds, so they sort as text; money is integer minor
units and `currency`; JSON documents (payload, metadata, detail, result, error, response_body)
are JSON text; `expires_ttl` (epoch seconds, the TTL attribute) is set only on idempotency and
rejection items, each also carrying `expires_at` text, and on tombstones.

Removals. The store never deletes an item, so the roles that run it need no
dynamodb:DeleteItem: forgetting an in-flight Idempotency-Key, releasing a lookup whose payment
or refund id changed, clearing reconciliation state and trimming the rejection log each put a
tombstone in the item's place (`dynamo.items.tombstone`: the keys, `removed_at` and the TTL
attribute set to that moment), under the condition the removal has. It carries no index
attribute, so it leaves every index at once; every read treats it as absent, and so do the
conditions (`absent` holds on it, `exists` does not), so a create over it succeeds and an
update of it fails, as after a delete. DynamoDB's TTL deletes it later, at no cost.

Four overloaded global secondary indexes, keys only (an update that leaves an item's index
keys alone writes no index; reads always fetch the items from the table, consistently):

    by_time   (tpk, tsk)  ORDER / OUTBOX: created#id; INBOX / REJECTION: received#id#provider;
                          TRUTH: next_attempt_at#id             — newest-first listings
    by_status (spk, ssk)  ORDER#<status> / OUTBOX#<status>: created#id;
                          TRUTH#<status>: next_attempt_at#id; REFUND#<status>: updated#id
    by_due    (dpk, dsk)  DUE#OUTBOX / DUE#TRUTH (sparse: pending only): due#id, where "due" is
                          the lease's end while leased, else the retry time;
                          RECON#<status>: updated#id (reconciliation candidates)
    by_order  (opk, osk)  ORDER#<id>: O#created#id (its outbox), R#created#id (its refunds),
                          P#created#key (its provider operations), I#received#provider:event
                          (its stored events), A#at#id (its audit entries);
                          ATTENTION (sparse: flagged orders only): created#id

`outbox_for_order` and `refunds_for_order` (operator views) find an order's messages and refunds
through by_order, so across units of work they lag a write by the index's delay (this unit's
own writes they see at once). The ATTENTION, P# and I# keys came later than the others: items
written before them get them from `paywire migrate`'s backfill (`dynamo.backfill`).
Everything correctness rests on — uniqueness, versions, the inbox, claims — reads the table or
writes conditionally, never trusts an index.

Listings put every order (and every outbox message, event, rejection) in one index partition
per kind: about 1,000 writes a second per partition, plenty for a payment backend, and a
keyset page is one Query. Sharding the partition would multiply each page into a merge of
one Query per shard; it is not worth it at this scale.

Units of work. Reads are strongly consistent and see this unit's buffered writes; writes are
buffered and committed at exit as one TransactWriteItems (at most 100 items; a unit that
needs more gets a ValueError at the write that would exceed it, and nothing is written).
Order updates are conditional on `version`, put-if-absent on `attribute_not_exists(pk)` or a
tombstone (or, for expiring items, `expires_at <= now`: DynamoDB deletes expired items late,
so an expired item reads and writes as absent). A failed condition at commit is a
ConflictError naming the item (CancellationReasons are mapped by index to the writes);
throttling, server errors and an unreachable endpoint are StorageError. An exception in the
body writes nothing.

Immediate writes. Claims and leases (`claim_operation`, `claim_outbox`, `claim_truth_tasks`,
`finish_outbox`, `finish_truth_task`, `settle_outbox`, `revive_outbox`, `lock_idempotency`)
are single conditional UpdateItems made at once, so their answers are true when given; one
made in a unit that holds buffered writes commits those first. `put_operation` and
`put_idempotency` are made at once when they are their unit's first write — their callers
(`OperationRunner.claim`, the Idempotency-Key gate) act on the answer and write nothing else
in that unit — and are buffered otherwise. An immediate write is not undone by an exception
raised later in the body.
"""

from paywire.store.dynamo.items import TTL_ATTRIBUTE
from paywire.store.dynamo.store import (
           DynamoStore,
           check_table_name,
           ensure_table,
           make_client,
           table_definition,
)

__all__ = ["TTL_ATTRIBUTE", "DynamoStore", "check_table_name", "ensure_table", "make_client",
           "table_definition"]
