/* cost-harness report: tabs, legend toggles, synchronised crosshair. No network, no eval;
   text is only ever set with textContent. Allowed by the page's CSP through its hash. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function each(selector, fn, root) {
    Array.prototype.forEach.call((root || document).querySelectorAll(selector), fn);
  }

  each("[data-tabs]", function (box) {
    var buttons = box.querySelectorAll("[data-tab]");
    function show(id) {
      Array.prototype.forEach.call(buttons, function (b) {
        var on = b.getAttribute("data-tab") === id;
        b.setAttribute("aria-selected", on ? "true" : "false");
        var panel = document.getElementById(b.getAttribute("data-tab"));
        if (panel) { panel.hidden = !on; }
      });
    }
    Array.prototype.forEach.call(buttons, function (b) {
      b.addEventListener("click", function () { show(b.getAttribute("data-tab")); });
    });
    if (buttons.length) { show(buttons[0].getAttribute("data-tab")); }
  });

  each("svg.chart .legend-item", function (item) {
    function toggle() {
      var svg = item.ownerSVGElement;
      var path = svg.querySelector('.series[data-i="' + item.getAttribute("data-i") + '"]');
      var off = item.classList.toggle("off");
      if (path) { path.style.display = off ? "none" : ""; }
    }
    item.addEventListener("click", toggle);
    item.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); toggle(); }
    });
  });

  var holder = document.getElementById("timeline-data");
  var tip = document.getElementById("tip");
  if (!holder || !tip) { return; }
  var data = JSON.parse(holder.textContent);
  var charts = Array.prototype.slice.call(document.querySelectorAll("#oncall svg.chart"));

  function nearest(t) {
    var lo = 0, hi = data.t.length - 1;
    while (hi - lo > 1) {
      var mid = (lo + hi) >> 1;
      if (data.t[mid] <= t) { lo = mid; } else { hi = mid; }
    }
    return Math.abs(data.t[hi] - t) < Math.abs(data.t[lo] - t) ? hi : lo;
  }

  function fmt(v) {
    if (v === null || v === undefined) { return "–"; }
    if (Math.abs(v) >= 1000) { return Math.round(v).toLocaleString("en-US"); }
    return String(Number(v.toPrecision(3)));
  }

  function line(text, strong) {
    var row = document.createElement("div");
    if (strong) { row.className = "tip-head"; }
    row.textContent = text;
    tip.appendChild(row);
  }

  function hide() {
    tip.hidden = true;
    charts.forEach(function (c) { c.querySelector(".cross").style.visibility = "hidden"; });
  }

  function move(svg, evt) {
    var d = svg.dataset, box = svg.getBoundingClientRect();
    var left = +d.left, right = +d.right, x0 = +d.x0, x1 = +d.x1;
    var vx = (evt.clientX - box.left) * (+d.width) / box.width;
    if (vx < left || vx > right || !data.t.length) { hide(); return; }
    var i = nearest(x0 + (vx - left) / (right - left) * (x1 - x0));
    var px = left + (data.t[i] - x0) / (x1 - x0) * (right - left);
    charts.forEach(function (c) {
      var cross = c.querySelector(".cross");
      cross.setAttribute("x1", px);
      cross.setAttribute("x2", px);
      cross.style.visibility = "visible";
    });
    tip.textContent = "";
    line(data.t[i] + " s" + (data.phase[i] ? " · " + data.phase[i] : ""), true);
    Object.keys(data.series).forEach(function (key) {
      var s = data.series[key];
      line(s.label + ": " + fmt(s.values[i]) + " " + s.unit, false);
    });
    tip.hidden = false;
    var x = evt.pageX + 14, y = evt.pageY + 14;
    if (evt.clientX + 14 + tip.offsetWidth > document.documentElement.clientWidth) {
      x = evt.pageX - tip.offsetWidth - 14;
    }
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }

  charts.forEach(function (svg) {
    svg.addEventListener("mousemove", function (evt) { move(svg, evt); });
    svg.addEventListener("mouseleave", hide);
  });
})();
