/* The wall's alarm ticker (dashboards/wall.py): whole alarms only, a page at a time.
   The alarms that fit the ticker's width make a page; no alarm is cut at an edge or hidden under
   another element. Pages turn every few seconds, with "2/3" beside them; a new answer of the
   server (or a resized screen) is paged again. With the wall's alarm sound on (data-sound="1", the
   CITYOPS_WALL_ALARM_SOUND setting), a newly escalated urgent alarm beeps once. */
(function () {
  "use strict";
  var PAGE_MS = 6000;          // (a ticker's data-page-seconds says otherwise)
  var state = { page: 0, turned: 0, sig: "", beeped: {} };

  function pagesOf(list) {
    var items = Array.prototype.slice.call(list.children);
    items.forEach(function (li) { li.style.display = ""; });
    var avail = list.clientWidth;
    var gap = parseFloat(getComputedStyle(list).columnGap) || 0;
    var pages = [], cur = [], used = 0;
    items.forEach(function (li) {
      var w = li.getBoundingClientRect().width;
      if (cur.length && used + gap + w > avail) { pages.push(cur); cur = []; used = 0; }
      used += (cur.length ? gap : 0) + w;
      cur.push(li);
    });
    if (cur.length) { pages.push(cur); }
    return pages;
  }

  function show(list, counter) {
    var pages = pagesOf(list);
    if (state.page >= pages.length) { state.page = 0; }
    pages.forEach(function (p, i) {
      p.forEach(function (li) { li.style.display = i === state.page ? "" : "none"; });
    });
    if (counter) { counter.textContent = pages.length > 1 ? (state.page + 1) + "/" + pages.length : ""; }
  }

  function beep() {
    try {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      var ctx = new Ctx(), osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.type = "square"; osc.frequency.value = 880; gain.gain.value = 0.08;
      osc.connect(gain); gain.connect(ctx.destination);
      osc.start(); osc.stop(ctx.currentTime + 0.6);
    } catch (e) { /* no audio on this screen */ }
  }

  function escalations(ticker, list) {
    var fresh = false;
    list.querySelectorAll("li.escalated").forEach(function (li) {
      var key = li.textContent;
      if (!state.beeped[key]) { state.beeped[key] = true; fresh = true; }
    });
    if (fresh && ticker.getAttribute("data-sound") === "1") { beep(); }
  }

  /* The city fits its map panel at any aspect (16:9, 32:9, a laptop) from the first paint: the
     zoom and centre that show the panel's data-bounds (west,south,east,north) whole in its own
     pixels — MapLibre's world is 512·2^zoom px wide. At city level only (a district's view is the
     server's); the figure Dash holds is updated too, so later refreshes keep the fitted view. */
  var fitted = { key: "", zoom: null };
  function mercY(lat) { var s = Math.sin(lat * Math.PI / 180); return 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI); }
  function latOf(y) { return 360 / Math.PI * Math.atan(Math.exp((0.5 - y) * 2 * Math.PI)) - 90; }
  function fitCity() {
    var body = document.querySelector(".p-map .panel-body[data-bounds]");
    var back = document.getElementById("wall-back");
    if (!body || (back && !back.classList.contains("hidden"))) { return; }
    var gd = body.querySelector(".js-plotly-plot");
    if (!gd || !gd.layout || !gd.layout.map || !gd.clientWidth || !gd.clientHeight || !window.dash_clientside) { return; }
    var b = body.getAttribute("data-bounds").split(",").map(Number);
    var W = gd.clientWidth, H = gd.clientHeight, key = W + "x" + H;
    if (key === fitted.key && Math.abs((gd.layout.map.zoom || 0) - fitted.zoom) < 0.01) { return; }
    var dx = (b[2] - b[0]) / 360, dy = mercY(b[1]) - mercY(b[3]);
    var zoom = Math.log2(Math.min(W * 0.94 / (512 * dx), H * 0.94 / (512 * dy)));
    zoom = Math.round(zoom * 100) / 100;
    var map = Object.assign({}, gd.layout.map, {
      zoom: zoom, center: { lon: (b[0] + b[2]) / 2, lat: latOf((mercY(b[1]) + mercY(b[3])) / 2) } });
    fitted = { key: key, zoom: zoom };
    var graph = gd.closest(".dash-graph");
    window.dash_clientside.set_props(graph && graph.id ? graph.id : "wall-map",
                                     { figure: { data: gd.data, layout: Object.assign({}, gd.layout, { map: map }) } });
  }

  setInterval(function () {
    try { fitCity(); } catch (e) { /* the map is not drawn yet */ }
    var list = document.querySelector(".ticker-list");
    if (!list) { return; }
    var ticker = list.closest(".ticker"), counter = ticker && ticker.querySelector(".ticker-page");
    var now = Date.now();
    var sig = list.children.length + ":" + list.textContent.length + ":" + list.clientWidth;
    var every = parseFloat(ticker && ticker.getAttribute("data-page-seconds")) * 1000 || PAGE_MS;
    if (now - state.turned >= every) {
      state.page += 1; state.turned = now; show(list, counter);
    } else if (sig !== state.sig) {
      show(list, counter);
    }
    if (sig !== state.sig && ticker) { escalations(ticker, list); }
    state.sig = sig;
  }, 250);
})();
