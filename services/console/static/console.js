// LeadFlow console: the little the pages need beyond HTML (every form also works without it).
(function () {
  "use strict";

  // The browser's time zone, so the server shows times in it (next page on).
  try {
    var tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (tz && document.cookie.indexOf("lf_tz=" + encodeURIComponent(tz)) === -1) {
      document.cookie = "lf_tz=" + encodeURIComponent(tz) + "; path=/; max-age=31536000; samesite=lax";
    }
  } catch (e) { /* an old browser: the default zone (Asia/Shanghai) applies */ }

  // Forms that ask before they act (release a lead).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // htmx: the same confirmation for htmx-driven forms, and upload progress for the import.
  document.addEventListener("htmx:confirm", function (event) {
    var form = event.target.closest && event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
  });
  document.addEventListener("htmx:xhr:progress", function (event) {
    var bar = document.getElementById("import-progress");
    if (bar && event.detail && event.detail.lengthComputable) {
      bar.value = Math.round((event.detail.loaded / event.detail.total) * 100);
    }
  });

  function startLiveFeed() {
    var list = document.getElementById("live-feed");
    if (!list || !window.EventSource) { return; }
    var empty = document.getElementById("live-empty");
    var source = new EventSource(list.getAttribute("data-src"));
    source.addEventListener("news", function (event) {
      var holder = document.createElement("ul");
      holder.innerHTML = event.data;  // HTML rendered and escaped by the console's templates
      while (holder.firstChild) { list.insertBefore(holder.firstChild, list.firstChild); }
      if (empty) { empty.hidden = true; }
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function drawFunnel() {
    var box = document.getElementById("funnel-chart");
    var data = document.getElementById("funnel-data");
    if (!box || !data || !window.echarts) { return; }
    var chart = JSON.parse(data.textContent);
    var view = window.echarts.init(box, null, { renderer: "svg" });
    view.setOption({
      aria: { enabled: true },
      tooltip: { trigger: "axis" },
      legend: { show: chart.series.length > 1, type: "scroll", top: 0 },
      grid: { left: 48, right: 16, top: chart.series.length > 1 ? 36 : 16, bottom: 40 },
      xAxis: { type: "category", data: chart.stages, axisLabel: { interval: 0, rotate: window.innerWidth < 640 ? 40 : 0 } },
      yAxis: { type: "value", minInterval: 1 },
      series: chart.series.map(function (s) {
        return { name: s.name, type: "bar", data: s.data, label: { show: chart.series.length === 1, position: "top" } };
      })
    });
    window.addEventListener("resize", function () { view.resize(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    startLiveFeed();
    drawFunnel();
  });
})();
