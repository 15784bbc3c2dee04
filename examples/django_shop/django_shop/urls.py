"""The shop's pages, and paywire's API and webhooks under /paywire/."""

from django.urls import include, path
from shop import views

urlpatterns = [
    path("", views.catalog, name="catalog"),
    path("return", views.paypal_return, name="return"),
    path("orders/<str:order_id>/", views.order_page, name="order"),
    path("orders/<str:order_id>/fulfilment.json", views.fulfilment, name="fulfilment"),
    path("paywire/", include("paywire.contrib.django.urls")),
]
