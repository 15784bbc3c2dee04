/* paywire demo shop: back from PayPal's approve_url without the SDK; capture, then the receipt. */
(function () {
  "use strict";
  const shop = window.paywireShop;

  async function start() {
    const token = document.getElementById("return").dataset.token;
    try {
      const order = await shop.api(
        "/v1/checkout/orders/" + encodeURIComponent(token) + "/capture", {method: "POST"});
      window.location.replace(shop.prefix + "/receipt/" + encodeURIComponent(order.id));
    } catch (err) {
      shop.show("The payment could not be captured: " + err.message, "error");
    }
  }

  start();
})();
