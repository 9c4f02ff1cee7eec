// quits: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function syncExpenseForm(form) {
    var split = form.querySelector("[name=split_type]");
    if (split) form.dataset.split = split.value;
    var several = form.querySelector("[name=payer_mode][value=several]");
    if (several) form.dataset.payers = several.checked ? "several" : "one";
    var currency = form.querySelector("[name=currency]");
    var rate = form.querySelector("[name=exchange_rate]");
    var same = currency && currency.value.trim().toUpperCase() === form.dataset.groupCurrency && !(rate && rate.value);
    if (same) form.dataset.sameCurrency = ""; else delete form.dataset.sameCurrency;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("expense-form");
    if (form) {
      syncExpenseForm(form);
      form.addEventListener("change", function () { syncExpenseForm(form); });
      form.addEventListener("input", function () { syncExpenseForm(form); });
    }
    var summary = document.getElementById("error-summary");
    if (summary) summary.focus();
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var input = document.querySelector(button.getAttribute("data-copy"));
        var status = document.getElementById("copy-status");
        input.select();
        var done = function () { if (status) status.textContent = "Copied."; };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
        } else { document.execCommand("copy"); done(); }
      });
    });
  });
})();
