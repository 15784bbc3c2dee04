"""The operator's dashboard at /admin (issue 19): orders searched and followed one by one, the
needs-attention queue and its actions, webhook rejections, the truth queue, the outbox and the
audit log, server-rendered over `services.dashboard`.

    app      the pages and actions (`create_admin`, mounted by `paywire.bootstrap.app`)
    auth     password hashes, signed sessions, CSRF tokens, the sign-in throttle
    health   the health strip and the seam it is read through

Nothing is imported here: a process that never serves the dashboard (a Lambda function other
than the HTTP one, the worker) loads neither Jinja2 nor Starlette for it.
"""
