"""Use cases (checkout, capture, refund, webhook ingest, fulfilment, reconciliation) over ports."""
