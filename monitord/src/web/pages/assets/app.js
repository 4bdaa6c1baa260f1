// monitord's dashboard script: adds to pages that work without it. The fleet table
// refreshes itself every interval (fetching the same template's fragment, /?partial=1),
// keeping scroll and filter; the filter box filters as you type; charts show the hovered
// bucket and turn a drag into ?from=&to=. No framework, nothing fetched from elsewhere.
"use strict";

function fleetFilter(box) {
  var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
  document.querySelectorAll("#fleet tr.host").forEach(function (row) {
    var text = row.textContent.toLowerCase();
    row.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
  });
}

function fleetQuery(box, partial) {
  var params = new URLSearchParams(location.search);
  if (box.value.trim()) { params.set("q", box.value.trim()); } else { params.delete("q"); }
  if (partial) { params.set("partial", "1"); }
  return params.toString();
}

function setupFleet() {
  var holder = document.getElementById("fleet");
  var box = document.getElementById("q");
  var live = document.getElementById("live");
  var every = Number(document.body.dataset.refresh || 0);
  if (!holder || !box || !every) { return; }
  box.addEventListener("input", function () {
    fleetFilter(box);
    var query = fleetQuery(box, false);
    history.replaceState(null, "", query ? "/?" + query : "/");
  });
  function refresh() {
    if (document.hidden) { return; }
    fetch("/?" + fleetQuery(box, true), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
      .then(function (html) {
        holder.innerHTML = html;
        fleetFilter(box);
        live.textContent = "updated " + new Date().toLocaleTimeString();
      })
      .catch(function (e) { live.textContent = "refresh failed (" + e.message + "), retrying"; });
  }
  setInterval(refresh, every * 1000);
}

function setupChart(svg) {
  var from = Number(svg.dataset.from), to = Number(svg.dataset.to);
  var x0 = Number(svg.dataset.x0), x1 = Number(svg.dataset.x1);
  var width = svg.viewBox.baseVal.width;
  var readout = svg.parentNode.querySelector(".readout");
  function svgX(event) {
    var box = svg.getBoundingClientRect();
    return (event.clientX - box.left) * width / box.width;
  }
  function ts(x) {
    return Math.round(from + (Math.min(Math.max(x, x0), x1) - x0) / (x1 - x0) * (to - from));
  }
  svg.addEventListener("mouseover", function (event) {
    var t = event.target;
    if (readout && t.classList && t.classList.contains("pt")) {
      readout.textContent = t.querySelector("title").textContent;
    }
  });
  var start = null, selection = null;
  svg.addEventListener("mousedown", function (event) {
    start = svgX(event);
    selection = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    selection.setAttribute("class", "selection");
    selection.setAttribute("y", 8);
    selection.setAttribute("height", svg.viewBox.baseVal.height - 28);
    selection.setAttribute("x", start);
    selection.setAttribute("width", 0);
    svg.appendChild(selection);
    event.preventDefault();
  });
  svg.addEventListener("mousemove", function (event) {
    if (start === null) { return; }
    var x = svgX(event);
    selection.setAttribute("x", Math.min(x, start));
    selection.setAttribute("width", Math.abs(x - start));
  });
  function end(event) {
    if (start === null) { return; }
    var x = svgX(event), a = ts(Math.min(x, start)), b = ts(Math.max(x, start));
    var moved = Math.abs(x - start);
    start = null;
    selection.remove();
    // A click is not a zoom; nor is less than a minute.
    if (moved > 4 && b - a >= 60000) {
      location.search = "?from=" + a + "&to=" + b;
    }
  }
  svg.addEventListener("mouseup", end);
  svg.addEventListener("mouseleave", function () {
    if (start !== null) { start = null; selection.remove(); }
  });
}

document.addEventListener("DOMContentLoaded", function () {
  document.documentElement.dataset.js = "on";
  setupFleet();
  document.querySelectorAll("svg.chart").forEach(setupChart);
});
