"""ASGI entry point: Django's application, with paywire started by the server's lifespan."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_shop.settings")

from paywire.contrib.django.asgi import get_asgi_application

application = get_asgi_application()
