"""A FastAPI coffee shop that embeds paywire (`app.create_app`); `python -m
examples.fastapi_shop` runs it against a local PayPal emulator."""
