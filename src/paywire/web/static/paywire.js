/* paywire demo shop: helpers shared by its pages (no build step, no dependencies). */
(function () {
  "use strict";

  /** Call paywire's JSON API on this origin; reject with its structured error message. */
  async function api(path, options) {
    const init = Object.assign({headers: {"Accept": "application/json"}}, options || {});
    if (init.body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(init.body);
    }
    const response = await fetch(path, init);
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const error = body && body.error ? body.error : {};
      const err = new Error(error.message || (response.status + " " + response.statusText));
      err.code = error.code || null;
      err.status = response.status;
      throw err;
    }
    return body;
  }

  /** Show a status line to the buyer (text only, never markup). */
  function show(text, kind) {
    const status = document.getElementById("status");
    if (!status) { return; }
    status.textContent = text;
    status.className = kind || "";
  }

  /** "12.34 USD" from a money object. */
  function money(amount) {
    return amount ? amount.value + " " + amount.currency_code : "";
  }

  /** A table cell holding `text`. */
  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) { td.className = className; }
    return td;
  }

  /** Post a provider's signed checkout form ({url, fields}) from this page, as a buyer would:
   * a <form method="post"> of hidden inputs, submitted (the page's form-action allows it). */
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

  window.paywireShop = {
    api: api, show: show, money: money, cell: cell, postForm: postForm,
    prefix: document.body.dataset.prefix || "",
  };
})();
