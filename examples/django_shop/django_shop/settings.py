"""The sample shop's settings: a small Django project with paywire embedded.

Everything paywire needs is `PAYWIRE` below (the `PAYWIRE_*` variables' names without the
prefix). The demo talks to paywire's PayPal and APS emulator (`manage.py shop_demo` starts it);
a real shop sets `PAYPAL_ENV` to `sandbox` or `live`, its credentials and webhook id, and its
own catalog. Storage: this project's database (SQLite here, PostgreSQL with
`SHOP_POSTGRES_NAME`), paywire's tables beside the shop's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("SHOP_DATA_DIR", BASE_DIR / ".data")).resolve()
SITE_URL = os.environ.get("SHOP_SITE_URL", "http://127.0.0.1:8000")
EMULATOR_URL = os.environ.get("SHOP_EMULATOR_URL", "http://127.0.0.1:8090")

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "paywire.contrib.django",
    "shop",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
# PayPal's buttons open the approval page in a popup that reports back through window.opener;
# Django's default policy (same-origin) severs it, and the buttons see a cancel.
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin-allow-popups"
ROOT_URLCONF = "django_shop.urls"
ASGI_APPLICATION = "django_shop.asgi.application"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
}]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES: dict[str, dict[str, Any]]
if os.environ.get("SHOP_POSTGRES_NAME"):
    DATABASES = {"default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["SHOP_POSTGRES_NAME"],
        "USER": os.environ.get("SHOP_POSTGRES_USER", "postgres"),
        "HOST": os.environ.get("SHOP_POSTGRES_HOST", "127.0.0.1"),
        "PORT": os.environ.get("SHOP_POSTGRES_PORT", "5432"),
    }}
else:
    DATABASES = {"default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "shop.sqlite3",
        # paywire's connections share the database, so tests need a file too.
        "TEST": {"NAME": DATA_DIR / "test-shop.sqlite3"},
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }}

# paywire (docs/django.md). The PayPal and APS credentials are the emulator's demo ones.
PAYWIRE: dict[str, Any] = {
    "PROVIDERS": "paypal,aps",
    "PAYPAL_ENV": "emulator",
    "PAYPAL_BASE_URL": EMULATOR_URL,
    "PAYPAL_CLIENT_ID": "django-shop-demo",
    "PAYPAL_CLIENT_SECRET": "django-shop-demo-secret",
    # PAYPAL_WEBHOOK_ID: `shop_demo` subscribes SITE_URL/paywire/webhooks/paypal at the
    # emulator and sets it.
    "APS_ENV": "emulator",
    "APS_API_URL": f"{EMULATOR_URL}/aps/FortAPI/paymentApi",
    "APS_PAGE_URL": f"{EMULATOR_URL}/aps/FortAPI/paymentPage",
    "APS_ACCESS_CODE": "djangoShopDemoAccess",
    "APS_MERCHANT_IDENTIFIER": "djshop01",
    "APS_REQUEST_PHRASE": "demo-request-phrase",
    "APS_RESPONSE_PHRASE": "demo-response-phrase",
    "APS_RETURN_URL": f"{SITE_URL}/paywire/v1/aps/return",
    # The catalog paywire prices from, written from the shop's Product rows (shop.catalog).
    "CATALOG_PATH": DATA_DIR / "catalog.json",
    "RETURN_URL": f"{SITE_URL}/return",
    "CANCEL_URL": f"{SITE_URL}/",
    # Called in the shop's transaction.atomic(), once per announcement (shop/fulfilment.py).
    "FULFILMENT_CALLABLE": "shop.fulfilment:on_paywire",
    "OUTBOX_BASE_DELAY_SECONDS": 1,
    "LOG_FORMAT": "text",
}
