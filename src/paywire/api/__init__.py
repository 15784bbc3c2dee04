"""paywire's own HTTP API (checkout, webhooks, admin)."""
