/* paywire PayPal sandbox emulator: a minimal PayPal JS SDK (`paypal.Buttons`).
 *
 * Protocol: a click opens a popup at once (inside the user gesture, so no popup blocker),
 * awaits `createOrder`, then points the popup at the emulator's
 * /checkoutnow?token=<id>&sdk=1&origin=<this page's origin>. The emulator's result page posts
 * {type: "paywire-emulator", action: "approve"|"cancel", orderID, payerID} to window.opener;
 * we accept it only from the popup and the emulator's origin, close the popup and call
 * onApprove / onCancel. A popup closed by the buyer counts as a cancel, as with PayPal.
 */
(function () {
  "use strict";
  var CONFIG = {{ config|tojson }};
  var BASE = CONFIG.base;
  var EMULATOR_ORIGIN = new URL(BASE).origin;
  var MESSAGE_TYPE = "paywire-emulator";
  var CLOSED_GRACE_MS = 500;
  var LABELS = {paypal: "PayPal", checkout: "PayPal Checkout", buynow: "Buy Now with PayPal",
                pay: "Pay with PayPal"};
  var COLORS = {gold: ["#ffc439", "#111111"], blue: ["#0070ba", "#ffffff"],
                silver: ["#eeeeee", "#111111"], white: ["#ffffff", "#111111"],
                black: ["#000000", "#ffffff"]};
  var RADII = {rect: "4px", pill: "999px", sharp: "0"};
  var popups = 0;

  function asError(err) { return err instanceof Error ? err : new Error(String(err)); }

  function unsupported(what) {
    return function () {
      return Promise.reject(new Error("paywire emulator: " + what + " is not supported; " +
                                      "call the Orders API from your server"));
    };
  }

  function closeQuietly(win) {
    try { if (win && !win.closed) { win.close(); } } catch (e) { /* already gone */ }
  }

  function openPopup() {
    popups += 1;
    var win = window.open("", "paywire_checkout_" + popups, "popup,width=500,height=680");
    if (!win) { throw new Error("paywire emulator: the checkout popup was blocked"); }
    try {
      win.document.title = "PayPal";
      win.document.body.textContent = "Loading PayPal checkout\u2026";
    } catch (e) { /* not same-origin yet: nothing to show */ }
    return win;
  }

  function awaitDecision(win, orderID) {
    return new Promise(function (resolve) {
      var done = false;
      var timer = null;
      function finish(result) {
        if (done) { return; }
        done = true;
        window.removeEventListener("message", onMessage);
        clearInterval(timer);
        closeQuietly(win);
        resolve(result);
      }
      function onMessage(event) {
        var d = event.data;
        if (event.origin !== EMULATOR_ORIGIN || event.source !== win) { return; }
        if (!d || d.type !== MESSAGE_TYPE || d.orderID !== orderID) { return; }
        finish({action: d.action === "approve" ? "approve" : "cancel",
                payerID: typeof d.payerID === "string" ? d.payerID : null});
      }
      window.addEventListener("message", onMessage);
      timer = setInterval(function () {
        if (!win.closed) { return; }
        clearInterval(timer);
        // A message posted just before the popup closed may still be queued: let it win.
        setTimeout(function () { finish({action: "cancel", payerID: null}); }, CLOSED_GRACE_MS);
      }, 250);
    });
  }

  function Buttons(options) {
    options = options || {};
    var style = options.style || {};
    var busy = false;
    var current = null;
    var rendered = [];

    function report(err) {
      err = asError(err);
      if (typeof options.onError === "function") {
        try { options.onError(err); } catch (e) { console.error(e); }
      } else {
        console.error("paypal.Buttons:", err);
      }
    }

    function approveActions(orderID) {
      return {
        restart: function () { var w = openPopup(); current = w; return checkout(w, orderID); },
        redirect: function (url) { window.location.assign(url); },
        order: {capture: unsupported("actions.order.capture"),
                get: unsupported("actions.order.get"),
                patch: unsupported("actions.order.patch")}
      };
    }

    function checkout(win, orderID) {
      var query = new URLSearchParams({token: orderID, sdk: "1", origin: window.location.origin});
      win.location.href = BASE + "/checkoutnow?" + query.toString();
      return awaitDecision(win, orderID).then(function (result) {
        if (result.action === "approve") {
          var data = {orderID: orderID, payerID: result.payerID, paymentID: null,
                      billingToken: null, facilitatorAccessToken: null, paymentSource: "paypal"};
          return typeof options.onApprove === "function"
            ? options.onApprove(data, approveActions(orderID)) : undefined;
        }
        return typeof options.onCancel === "function"
          ? options.onCancel({orderID: orderID}) : undefined;
      });
    }

    function start() {
      var vetoed;
      var win;
      if (busy) { try { current.focus(); } catch (e) { /* closed */ } return; }
      if (typeof options.onClick === "function") {
        try {
          vetoed = options.onClick({fundingSource: "paypal"}, {
            resolve: function () { return Promise.resolve(true); },
            reject: function () { return Promise.resolve(false); }
          });
        } catch (err) { report(err); return; }
        if (vetoed === false) { return; }
      }
      try { win = openPopup(); } catch (err) { report(err); return; }
      busy = true;
      current = win;
      Promise.resolve(vetoed).then(function (ok) {
        if (ok === false) { closeQuietly(win); return undefined; }
        if (typeof options.createOrder !== "function") {
          throw new Error("paywire emulator: pass createOrder to paypal.Buttons; it must " +
                          "resolve to the id of an order your server created");
        }
        var actions = {order: {create: unsupported("actions.order.create")}};
        return Promise.resolve(options.createOrder({paymentSource: "paypal"}, actions))
          .then(function (orderID) {
            if (typeof orderID !== "string" || !orderID) {
              throw new Error("createOrder must resolve to a PayPal order id, got " +
                              JSON.stringify(orderID));
            }
            return checkout(win, orderID);
          });
      }).catch(function (err) {
        closeQuietly(win);
        report(err);
      }).then(function () { busy = false; current = null; });
    }

    function makeButton() {
      var colors = COLORS[style.color] || COLORS.gold;
      var height = Math.min(Math.max(Number(style.height) || 45, 25), 55);
      var button = document.createElement("button");
      button.type = "button";
      button.className = "paypal-button paywire-paypal-button";
      button.setAttribute("data-funding-source", "paypal");
      button.textContent = LABELS[style.label] || LABELS.paypal;
      button.style.background = colors[0];
      button.style.color = colors[1];
      button.style.border = style.color === "white" ? "1px solid #555555" : "0";
      button.style.borderRadius = RADII[style.shape] || RADII.rect;
      button.style.height = height + "px";
      button.style.width = "100%";
      button.style.minWidth = "150px";
      button.style.font = "600 16px system-ui, sans-serif";
      button.style.cursor = "pointer";
      button.addEventListener("click", start);
      return button;
    }

    function render(target) {
      return new Promise(function (resolve, reject) {
        function go() {
          var container = typeof target === "string" ? document.querySelector(target)
            : (target && target.nodeType === 1 ? target : null);
          if (!container) {
            reject(new Error("paypal.Buttons: document is ready and element " + String(target) +
                             " does not exist"));
            return;
          }
          var button = makeButton();
          container.appendChild(button);
          rendered.push(button);
          resolve();
        }
        if (document.readyState === "loading") {
          document.addEventListener("DOMContentLoaded", go, {once: true});
        } else {
          go();
        }
      });
    }

    return {
      render: render,
      isEligible: function () { return true; },
      close: function () {
        rendered.forEach(function (b) { b.remove(); });
        rendered = [];
        return Promise.resolve();
      }
    };
  }

  var script = document.currentScript;
  var namespace = (script && script.getAttribute("data-namespace")) || "paypal";
  window[namespace] = {
    Buttons: Buttons,
    FUNDING: {PAYPAL: "paypal"},
    getFundingSources: function () { return ["paypal"]; },
    isFundingEligible: function (source) { return source === "paypal"; },
    version: "5.0.0-paywire-emulator",
    clientId: CONFIG.clientId,
    currency: CONFIG.currency
  };
})();
