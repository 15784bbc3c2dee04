"""paywire's API and webhook endpoints for a project's URLconf.

    urlpatterns = [..., path("paywire/", include("paywire.contrib.django.urls"))]

serves `paywire/v1/...` (the API: checkout, orders, refunds, the APS return page),
`paywire/webhooks/<provider>` (PayPal's and APS's deliveries: register
`https://<host>/paywire/webhooks/paypal` with PayPal) and `paywire/healthz`, `paywire/readyz`,
through `views.endpoint`. The prefix is the project's choice; paywire's own URLs (the APS return
URL, `PAYWIRE["APS_RETURN_URL"]`) must use it.
"""

from __future__ import annotations

from django.urls import re_path

from paywire.contrib.django.views import endpoint

app_name = "paywire"

urlpatterns = [
    re_path(r"^(?P<path>(?:v1|webhooks)/.*|healthz|readyz|docs|openapi\.json)$", endpoint,
            name="endpoint"),
]
