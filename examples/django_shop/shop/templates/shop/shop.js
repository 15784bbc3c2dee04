/* The sample Django shop's pages. paywire's API is served by Django under /paywire
 * (paywire.contrib.django.urls): the browser sends skus and quantities, never prices. */
(function () {
  "use strict";
  const API = document.body.dataset.api;

  async function api(path, options) {
    const init = Object.assign({headers: {"Accept": "application/json"}}, options || {});
    if (init.body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(init.body);
    }
    const response = await fetch(API + path, init);
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const error = body && body.error ? body.error : {};
      throw new Error(error.message || (response.status + " " + response.statusText));
    }
    return body;
  }

  function show(text, kind) {
    const status = document.getElementById("status");
    status.textContent = text;
    status.className = kind || "";
  }

  function items() {
    const chosen = [];
    for (const input of document.querySelectorAll("input.qty")) {
      const quantity = Number(input.value);
      if (Number.isInteger(quantity) && quantity > 0) {
        chosen.push({sku: input.dataset.sku, quantity: quantity});
      }
    }
    return chosen;
  }

  function orderPage(id) { return "/orders/" + encodeURIComponent(id) + "/"; }

  function postForm(form) {
    const el = document.createElement("form");
    el.method = "post";
    el.action = form.url;
    for (const [name, value] of Object.entries(form.fields)) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      el.append(input);
    }
    el.hidden = true;
    document.body.append(el);
    el.submit();
  }

  function catalog() {
    if (window.paypal && typeof window.paypal.Buttons === "function") {
      window.paypal.Buttons({
        onClick: function () {
          if (items().length === 0) { show("Choose a quantity first.", "error"); return false; }
          return true;
        },
        createOrder: async function () {
          const order = await api("/v1/checkout/orders", {
            method: "POST", body: {items: items(), intent: "CAPTURE"}});
          show("Order for " + order.amount.value + " " + order.amount.currency_code +
               " created; approve it at PayPal.");
          return order.provider_order_id;
        },
        onApprove: async function (data) {
          show("Approved; capturing…");
          const order = await api("/v1/checkout/orders/" + encodeURIComponent(data.orderID) +
                                  "/capture", {method: "POST"});
          window.location.assign(orderPage(order.id));
        },
        onCancel: function () { show("Payment cancelled; nothing was charged."); },
        onError: function (err) { show("Payment failed: " + err.message, "error"); },
      }).render("#paypal-buttons");
    } else {
      show("PayPal's script did not load: is the emulator running?", "error");
    }
    const card = document.getElementById("pay-by-card");
    if (!card) { return; }
    card.addEventListener("click", async function () {
      const email = document.getElementById("card-email");
      if (items().length === 0) { show("Choose a quantity first.", "error"); return; }
      if (!email.value || !email.checkValidity()) { show("Enter your e-mail.", "error"); return; }
      card.disabled = true;
      try {
        const order = await api("/v1/checkout/orders", {method: "POST", body: {
          items: items(), provider: "aps", customer_email: email.value}});
        postForm(order.checkout_form);
      } catch (err) {
        card.disabled = false;
        show("Could not start the card payment: " + err.message, "error");
      }
    });
  }

  const PAID = {COMPLETED: "paid", PARTIALLY_REFUNDED: "paid, partly refunded",
                REFUNDED: "refunded"};

  function order(id, fulfilmentUrl) {
    async function poll() {
      let settled = false;
      try {
        const paid = await api("/v1/orders/" + encodeURIComponent(id));
        document.getElementById("payment").textContent = PAID[paid.status] ||
          paid.status.toLowerCase();
        document.getElementById("amount").textContent =
          paid.amount.value + " " + paid.amount.currency_code;
        const shipped = await (await fetch(fulfilmentUrl, {cache: "no-store"})).json();
        if (shipped.fulfilled) {
          document.getElementById("fulfilment").textContent =
            shipped.status === "refunded" ? "refunded" : "fulfilled";
          settled = true;
        }
      } catch (err) {
        show(err.message, "error");
      }
      if (!settled) { window.setTimeout(poll, 500); }
    }
    poll();
  }

  window.shop = {catalog: catalog, order: order};
})();
