"""The shop's processed-message log in Django's admin, read-only (rows are the dedupe record)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from paywire.contrib.django.models import ProcessedMessage


@admin.register(ProcessedMessage)
class ProcessedMessageAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Which announcements the shop applied, and when."""

    list_display = ("processed_at", "type", "order_id", "message_id")
    list_filter = ("type",)
    search_fields = ("order_id", "message_id")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
