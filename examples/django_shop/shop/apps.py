"""The sample shop's app: its receivers are connected when Django is ready."""

from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"

    def ready(self) -> None:
        from shop import receivers  # noqa: F401  (connects the paywire signal receivers)
