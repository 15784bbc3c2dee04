"""Provider adapters: one package per payment provider (HTTP flows + pure wire mapping)."""
