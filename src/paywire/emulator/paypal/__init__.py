"""The PayPal half of the emulator: OAuth, Orders v2, Payments v2, webhooks, disputes, the buyer
pages and the `/_emulator` control API, behind PayPal's edge (`edge.py`).

Where things live: `http` is how every API route behaves (auth, mock responses, idempotency,
error shape) and `edge` what PayPal's front door does to every request (debug id, request log,
fault rules); `orders`, `order_request`, `order_patch` are Orders v2; `payments`,
`payment_request`, `authorizations` Payments v2 (captures, refunds, authorizations); `events`,
`webhooks_api`, `delivery`, `signing` webhooks (events, subscriptions, signed delivery);
`disputes`; `oauth` tokens; `checkout_page` the buyer's approval pages; `control` the
emulator-only API; `state` the resources; `errors` and `issues` PayPal's error vocabulary.
It imports nothing of APS: `paywire.emulator.app` mounts the two side by side.
"""
