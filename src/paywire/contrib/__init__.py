"""paywire inside a host web framework: `paywire.contrib.django` (`pip install 'paywire[django]'`).

Each integration is a composition root of its own: it reads the framework's configuration into
paywire's `Settings`, runs paywire's ASGI app (`paywire.embed`) beside the framework, and
reuses paywire's command-line commands; nothing below it imports it.
"""
