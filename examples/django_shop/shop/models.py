"""The shop's own data: its catalog (priced by paywire from these rows) and what it shipped."""

from __future__ import annotations

from django.db import models


class Product(models.Model):
    """Something the shop sells. paywire prices every order from these rows (shop.catalog
    writes them as paywire's catalog); the browser only ever sends skus and quantities."""

    sku = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    in_stock = models.BooleanField(default=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class Shipment(models.Model):
    """The shop's fulfilment of a paid paywire order: made once per order, in the same
    transaction as paywire's dedupe row (shop.fulfilment)."""

    paywire_order_id = models.CharField(max_length=64, unique=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, default="shipped")  # shipped | refunded
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.paywire_order_id}: {self.status}"
