/* paywire demo shop: the product page.
 *
 * Lists GET /v1/catalog with a quantity per product and renders PayPal's buttons. createOrder
 * sends skus and quantities (never prices) to POST /v1/checkout/orders and resolves to PayPal's
 * order id; onApprove captures through POST /v1/checkout/orders/{PayPal id}/capture and goes to
 * the receipt of our order.
 *
 * "Pay by card" (shown when paywire takes cards through APS) asks for the buyer's e-mail,
 * creates the order with provider "aps" and posts its signed checkout_form to APS's payment
 * page; APS brings the buyer back through paywire's return page to the shop's receipt.
 */
(function () {
  "use strict";
  const shop = window.paywireShop;
  const MAX_QUANTITY = 99;

  function quantityInput(product) {
    const input = document.createElement("input");
    input.type = "number";
    input.min = "0";
    input.max = String(MAX_QUANTITY);
    input.step = "1";
    input.value = "0";
    input.className = "qty";
    input.dataset.sku = product.sku;
    input.setAttribute("aria-label", "Quantity of " + product.name);
    input.disabled = product.in_stock === false;
    return input;
  }

  function renderCatalog(catalog) {
    const tbody = document.querySelector("#products tbody");
    tbody.replaceChildren();
    for (const product of catalog.products) {
      const row = document.createElement("tr");
      row.dataset.sku = product.sku;
      row.append(shop.cell(product.name + (product.in_stock === false ? " (out of stock)" : "")),
                 shop.cell(shop.money(product.unit_amount), "num"));
      const qty = shop.cell("", "num");
      qty.append(quantityInput(product));
      row.append(qty);
      tbody.append(row);
    }
  }

  function selectedItems() {
    const items = [];
    for (const input of document.querySelectorAll("input.qty")) {
      const quantity = Number(input.value);
      if (Number.isInteger(quantity) && quantity > 0 && quantity <= MAX_QUANTITY) {
        items.push({sku: input.dataset.sku, quantity: quantity});
      }
    }
    return items;
  }

  function renderButtons() {
    if (!window.paypal || typeof window.paypal.Buttons !== "function") {
      shop.show("PayPal's checkout script did not load: is the emulator running?", "error");
      return;
    }
    window.paypal.Buttons({
      onClick: function () {
        if (selectedItems().length === 0) {
          shop.show("Choose a quantity for at least one product first.", "error");
          return false;
        }
        shop.show("Opening PayPal…");
        return true;
      },
      createOrder: async function () {
        const order = await shop.api("/v1/checkout/orders", {
          method: "POST", body: {items: selectedItems(), intent: "CAPTURE"},
        });
        shop.show("Order for " + shop.money(order.amount) + " created; approve it at PayPal.");
        return order.provider_order_id;
      },
      onApprove: async function (data) {
        shop.show("Approved; capturing the payment…");
        const order = await shop.api(
          "/v1/checkout/orders/" + encodeURIComponent(data.orderID) + "/capture",
          {method: "POST"});
        window.location.assign(shop.prefix + "/receipt/" + encodeURIComponent(order.id));
      },
      onCancel: function () {
        shop.show("Payment cancelled; nothing was charged.");
      },
      onError: function (err) {
        shop.show("Payment failed: " + (err && err.message ? err.message : String(err)), "error");
      },
    }).render("#paypal-buttons");
  }

  function wireCardButton() {
    const button = document.getElementById("pay-by-card");
    if (!button) { return; }
    const email = document.getElementById("card-email");
    button.addEventListener("click", async function () {
      if (selectedItems().length === 0) {
        shop.show("Choose a quantity for at least one product first.", "error");
        return;
      }
      const address = email.value.trim();
      if (!address || !email.checkValidity()) {
        shop.show("Enter your e-mail address to pay by card.", "error");
        email.focus();
        return;
      }
      button.disabled = true;
      shop.show("Creating your order…");
      try {
        const order = await shop.api("/v1/checkout/orders", {
          method: "POST",
          body: {items: selectedItems(), provider: "aps", customer_email: address},
        });
        if (!order.checkout_form) {
          throw new Error("paywire answered no card payment form for this order");
        }
        shop.show("Order for " + shop.money(order.amount) + " created; opening the card page…");
        shop.postForm(order.checkout_form);
      } catch (err) {
        button.disabled = false;
        shop.show("Could not start the card payment: " + err.message, "error");
      }
    });
  }

  async function start() {
    try {
      renderCatalog(await shop.api("/v1/catalog"));
    } catch (err) {
      shop.show("Could not load the catalog: " + err.message, "error");
      return;
    }
    wireCardButton();
    renderButtons();
  }

  start();
})();
