/* paywire demo shop: the receipt page, showing GET /v1/orders/{id} as paywire recorded it. */
(function () {
  "use strict";
  const shop = window.paywireShop;

  function renderOrder(order) {
    document.getElementById("order-id").textContent = order.id;
    document.getElementById("order-status").textContent = order.status;
    document.getElementById("order-total").textContent = shop.money(order.amount);
    document.getElementById("provider-order-id").textContent = order.provider_order_id || "";
    const tbody = document.querySelector("#order-lines tbody");
    tbody.replaceChildren();
    for (const line of order.lines || []) {
      const row = document.createElement("tr");
      row.append(shop.cell(line.name || line.sku), shop.cell(String(line.quantity), "num"),
                 shop.cell(shop.money(line.unit_amount), "num"));
      tbody.append(row);
    }
    if (order.status === "COMPLETED") {
      shop.show("Thank you: your payment is complete.", "ok");
    } else {
      shop.show("This order is " + order.status + ".", order.status === "PENDING" ? "" : "error");
    }
  }

  async function start() {
    const ref = document.getElementById("receipt").dataset.orderRef;
    try {
      renderOrder(await shop.api("/v1/orders/" + encodeURIComponent(ref)));
    } catch (err) {
      shop.show("Could not load the order: " + err.message, "error");
    }
  }

  start();
})();
