"""The shop's pages: the catalog with PayPal's buttons and the card option, the return from
PayPal or APS, and an order page that shows the payment (paywire's) and the shipment (ours)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from shop.models import Product, Shipment


def catalog(request: HttpRequest) -> HttpResponse:
    """The products, priced from the same rows paywire prices from."""
    paywire = settings.PAYWIRE
    return render(request, "shop/catalog.html", {
        "products": Product.objects.all(),
        "paypal_sdk": f"{paywire['PAYPAL_BASE_URL']}/sdk/js?client-id="
                      f"{paywire['PAYPAL_CLIENT_ID']}&currency=USD",
        "cards": "aps" in str(paywire.get("PROVIDERS", "")),
    })


def paypal_return(request: HttpRequest) -> HttpResponse:
    """Back from APS's page (through paywire's return page: `?order_id=`), or from PayPal."""
    order_id = request.GET.get("order_id")
    if order_id:
        return redirect("order", order_id=order_id)
    return redirect("catalog")


def order_page(request: HttpRequest, order_id: str) -> HttpResponse:
    """The order: paid (paywire's status, read by the page), then fulfilled (our shipment)."""
    return render(request, "shop/order.html", {
        "order_id": order_id,
        "fulfilment_url": reverse("fulfilment", args=[order_id]),
    })


def fulfilment(request: HttpRequest, order_id: str) -> JsonResponse:
    """Whether the shop has shipped the order (the fulfilment made it)."""
    shipment = Shipment.objects.filter(paywire_order_id=order_id).first()
    return JsonResponse({"fulfilled": shipment is not None,
                         "status": shipment.status if shipment else None},
                        headers={"Cache-Control": "no-store"})
