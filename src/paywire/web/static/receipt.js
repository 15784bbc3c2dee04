/* paywire demo shop: the receipt page, showing GET /v1/orders/{id} as paywire recorded it.
 *
 * It calls without an API key, so it gets the buyer's view of the order (status, amount,
 * lines, provider, attempt, and the next step): no provider ids, captures or refunds.
 *
 * It polls the order until it settles and, when the shop hears paywire's announcements, the
 * shop's own record of order.completed until the order is fulfilled. An unpaid card order
 * (APS) carries the signed form of its current attempt: after a declined card that is a fresh
 * attempt, which the buyer can pay with another card from here.
 */
(function () {
  "use strict";
  const shop = window.paywireShop;
  const POLL_MS = 1000;
  const MAX_POLLS = 900;  // 15 minutes: then a reload resumes
  const SETTLED = new Set(["AUTHORIZED", "COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED",
                           "DENIED", "FAILED", "VOIDED", "EXPIRED", "REVERSED"]);
  const PAID = new Set(["COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"]);
  const receipt = document.getElementById("receipt");
  const ref = receipt.dataset.orderRef;
  let fulfilment = receipt.dataset.fulfilment;  // "fulfilled" | "waiting" | "off"
  let current = null;
  let polls = 0;

  function renderProvider(order) {
    const label = document.getElementById("provider-label");
    const id = document.getElementById("provider-order-id");
    if (order.provider === "aps") {
      label.textContent = "Card payment through Amazon Payment Services, attempt";
      id.textContent = String(order.payment_attempt);
    } else {
      label.textContent = "Payment through PayPal";
      id.textContent = "";
    }
  }

  function renderPayAgain(order) {
    const section = document.getElementById("pay-again");
    if (!order.checkout_form || SETTLED.has(order.status)) {
      section.hidden = true;
      return false;
    }
    document.getElementById("pay-again-text").textContent = order.payment_attempt > 1
      ? "Your card was declined; nothing was charged. You can pay with another card."
      : "This order is not paid yet. If you have just paid, the result shows here shortly.";
    document.getElementById("pay-again-button").textContent =
      order.payment_attempt > 1 ? "Pay again by card" : "Pay by card";
    section.hidden = false;
    return true;
  }

  function renderOrder(order) {
    document.getElementById("order-id").textContent = order.id;
    document.getElementById("order-status").textContent = order.status;
    document.getElementById("order-total").textContent = shop.money(order.amount);
    renderProvider(order);
    const tbody = document.querySelector("#order-lines tbody");
    tbody.replaceChildren();
    for (const line of order.lines || []) {
      const row = document.createElement("tr");
      row.append(shop.cell(line.name || line.sku), shop.cell(String(line.quantity), "num"),
                 shop.cell(shop.money(line.unit_amount), "num"));
      tbody.append(row);
    }
    const payable = renderPayAgain(order);
    if (order.status === "COMPLETED") {
      shop.show("Thank you: your payment is complete.", "ok");
    } else if (payable) {
      shop.show("");
    } else {
      shop.show("This order is " + order.status + ".",
                SETTLED.has(order.status) ? "error" : "");
    }
  }

  async function checkFulfilment() {
    const answer = await shop.api(
      shop.prefix + "/receipt/" + encodeURIComponent(ref) + "/fulfilment");
    if (answer && answer.fulfilled) {
      fulfilment = "fulfilled";
      document.getElementById("fulfilment").textContent = "fulfilled";
    }
  }

  function settled(order) {
    return SETTLED.has(order.status) && !(PAID.has(order.status) && fulfilment === "waiting");
  }

  async function poll() {
    polls += 1;
    try {
      current = await shop.api("/v1/orders/" + encodeURIComponent(ref));
      renderOrder(current);
      if (PAID.has(current.status) && fulfilment === "waiting") {
        await checkFulfilment();
      }
    } catch (err) {
      shop.show("Could not load the order: " + err.message, "error");
      if (err.status === 404) { return; }
    }
    if ((current === null || !settled(current)) && polls < MAX_POLLS) {
      window.setTimeout(poll, POLL_MS);
    }
  }

  document.getElementById("pay-again-button").addEventListener("click", function () {
    if (!current || !current.checkout_form) { return; }
    this.disabled = true;
    shop.show("Opening the card page…");
    shop.postForm(current.checkout_form);
  });

  poll();
})();
