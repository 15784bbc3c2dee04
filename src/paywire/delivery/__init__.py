"""Outbox delivery targets (signed HTTP callback, SQS, Python callable), and the shop's receiving
side of the signed callback (`receiver`, public as `paywire.verify_delivery`)."""
