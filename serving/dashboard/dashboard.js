// The recommendations dashboard: signs in with /v1/auth/login, keeps the access token in sessionStorage
// (this tab only, never in a URL), and draws the /v1/analytics/* series with the app's own plotly.js.
"use strict";

const TOKEN = "fitrec.dashboard.token";
const $ = (id) => document.getElementById(id);
const PLOT = { displayModeBar: false, responsive: true };
const BLUE = "#2f6fde";
const GREY = "#b8c4d6";

const pct = (v, digits = 1) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(digits)}%`);
const num = (v) => (v === null || v === undefined ? "–" : v.toLocaleString("en-US"));
const slot = (p) => `Slot ${p + 1}`;

class SignedOut extends Error {}
class Forbidden extends Error {}

async function api(path, params) {
  const token = sessionStorage.getItem(TOKEN);
  if (!token) throw new SignedOut();
  const query = new URLSearchParams(Object.entries(params || {}).filter(([, v]) => v));
  const response = await fetch(`/v1/analytics/${path}${query.size ? "?" + query : ""}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  if (response.status === 401) throw new SignedOut();
  if (response.status === 403) throw new Forbidden();
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
  return body;
}

function filters() {
  return { from: $("from").value, to: $("to").value, arm: $("arm").value, surface: $("surface").value };
}

function layout(extra) {
  return Object.assign(
    {
      margin: { l: 56, r: 56, t: 10, b: 44 },
      font: { family: "system-ui, sans-serif", size: 12, color: "#1f2933" },
      paper_bgcolor: "#fff",
      plot_bgcolor: "#fff",
      showlegend: false,
      yaxis: { tickformat: ".1%", title: { text: "click-through rate" }, rangemode: "tozero", gridcolor: "#e4e7eb" },
    },
    extra,
  );
}

function ctrBars(div, rows, label) {
  const trace = {
    type: "bar",
    x: rows.map(label),
    y: rows.map((r) => r.ctr),
    marker: { color: BLUE },
    error_y: {
      type: "data",
      symmetric: false,
      array: rows.map((r) => (r.ctr_high === null ? 0 : r.ctr_high - r.ctr)),
      arrayminus: rows.map((r) => (r.ctr_low === null ? 0 : r.ctr - r.ctr_low)),
      color: "#1f2933",
      thickness: 1.5,
      width: 6,
    },
    customdata: rows.map((r) => [r.impressions, r.clicks, pct(r.ctr_low), pct(r.ctr_high)]),
    hovertemplate:
      "%{x}<br>CTR %{y:.2%} (95%: %{customdata[2]} – %{customdata[3]})<br>" +
      "%{customdata[1]:,} clicks of %{customdata[0]:,} shown<extra></extra>",
  };
  Plotly.react(div, [trace], layout({ xaxis: { type: "category" } }), PLOT);
}

function drawDaily(rows) {
  // Counts on the base axis (right), the CTR line on the overlaying one, so the line is drawn over the bars.
  const days = rows.map((r) => r.day);
  const shown = {
    type: "bar",
    name: "items shown (right axis)",
    x: days,
    y: rows.map((r) => r.impressions),
    marker: { color: GREY, opacity: 0.6 },
    hovertemplate: "%{x}<br>%{y:,} items shown<extra></extra>",
  };
  const ctr = {
    type: "scatter",
    mode: "lines+markers",
    name: "click-through rate (left axis)",
    x: days,
    y: rows.map((r) => r.ctr),
    yaxis: "y2",
    line: { color: BLUE, width: 2.5 },
    marker: { size: 6 },
    customdata: rows.map((r) => r.clicks),
    hovertemplate: "%{x}<br>CTR %{y:.2%} (%{customdata:,} clicks)<extra></extra>",
  };
  Plotly.react(
    $("chart-daily"),
    [shown, ctr],
    layout({
      showlegend: true,
      legend: { orientation: "h", y: 1.12 },
      margin: { l: 56, r: 64, t: 24, b: 40 },
      yaxis: { title: { text: "items shown" }, side: "right", showgrid: false, rangemode: "tozero" },
      yaxis2: {
        title: { text: "click-through rate" },
        tickformat: ".1%",
        tickmode: "auto",
        overlaying: "y",
        side: "left",
        rangemode: "tozero",
        gridcolor: "#e4e7eb",
      },
    }),
    PLOT,
  );
}

function drawFunnel(conversion) {
  const trace = {
    type: "funnel",
    y: ["Shown", "Clicked", "Completed the workout"],
    x: [conversion.impressions, conversion.clicks, conversion.conversions],
    textinfo: "value+percent previous",
    marker: { color: [GREY, BLUE, "#1e9e6a"] },
    hovertemplate: "%{y}: %{x:,}<extra></extra>",
  };
  Plotly.react($("chart-funnel"), [trace], layout({ margin: { l: 150, r: 20, t: 10, b: 30 }, yaxis: {} }), PLOT);
  $("funnel-note").textContent =
    `Of the items shown, how many were clicked, and how many clicks ended in a completed workout ` +
    `within ${conversion.window_days} days.`;
}

function drawCoverage(coverage) {
  const trace = {
    type: "scatter",
    mode: "lines+markers",
    x: coverage.data.map((d) => d.day),
    y: coverage.data.map((d) => d.coverage),
    line: { color: "#7b4fd6", width: 2 },
    marker: { size: 5 },
    customdata: coverage.data.map((d) => [d.items_served, d.catalogue_items]),
    hovertemplate: "%{x}<br>%{y:.1%} of the catalogue (%{customdata[0]} of %{customdata[1]} items)<extra></extra>",
  };
  Plotly.react(
    $("chart-coverage"),
    [trace],
    layout({ yaxis: { tickformat: ".0%", title: { text: "share of catalogue" }, rangemode: "tozero", gridcolor: "#e4e7eb" } }),
    PLOT,
  );
}

function drawTopItems(items) {
  const body = $("top-items").querySelector("tbody");
  body.replaceChildren();
  items.data.forEach((item, i) => {
    const row = body.insertRow();
    const cells = [
      String(i + 1),
      item.title || item.item_id,
      (item.kind || "").replace("_", " "),
      num(item.impressions),
      num(item.clicks),
      pct(item.ctr),
      num(item.conversions),
    ];
    cells.forEach((text, c) => {
      const cell = row.insertCell();
      cell.textContent = text; // item titles are data: never parsed as HTML
      if (c >= 3) cell.className = "num";
    });
  });
  if (!items.data.length) {
    body.insertRow().insertCell().textContent = "No clicks in this period.";
  }
}

function drawTiles(conversion, coverage) {
  $("tile-impressions").textContent = num(conversion.impressions);
  $("tile-clicks").textContent = num(conversion.clicks);
  $("tile-ctr").textContent = pct(conversion.ctr, 2);
  $("tile-conversion").textContent = pct(conversion.conversion_rate);
  $("tile-conversion-label").textContent = `of clicks led to a completed workout within ${conversion.window_days} days`;
  $("tile-coverage").textContent = pct(coverage.coverage);
  $("tile-coverage-label").textContent =
    `of the catalogue was shown (${num(coverage.items_served)} of ${num(coverage.catalogue_items)} items)`;
}

async function refresh() {
  const f = filters();
  $("status").textContent = "Loading…";
  try {
    const [daily, arms, positions, surfaces, top, coverage, conversion] = await Promise.all([
      api("daily", f),
      api("arms", f),
      api("positions", f),
      api("surfaces", f),
      api("top-items", { ...f, limit: 10 }),
      api("coverage", f),
      api("conversion", f),
    ]);
    drawTiles(conversion, coverage);
    drawDaily(daily.data);
    ctrBars($("chart-arms"), arms.data, (r) => `${r.model_version} · ${r.arm}`);
    ctrBars($("chart-positions"), positions.data, (r) => slot(r.position));
    ctrBars($("chart-surfaces"), surfaces.data, (r) => r.surface);
    drawFunnel(conversion);
    drawCoverage(coverage);
    drawTopItems(top);
    $("status").textContent = daily.count ? "" : "No recommendations were shown in this period.";
    document.body.dataset.state = "ready";
    document.body.dataset.renders = String(Number(document.body.dataset.renders) + 1);
  } catch (error) {
    handle(error);
  }
}

function fillSelect(select, values) {
  for (const value of values) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = value;
    select.append(option);
  }
}

async function start() {
  try {
    const options = await api("options");
    showDashboard();
    if ($("arm").options.length === 1) fillSelect($("arm"), options.arms);
    if ($("surface").options.length === 1) fillSelect($("surface"), options.surfaces);
    if (options.first_day && !$("from").value) $("from").value = options.first_day;
    if (options.last_day && !$("to").value) $("to").value = options.last_day;
    await refresh();
  } catch (error) {
    handle(error);
  }
}

function handle(error) {
  if (error instanceof SignedOut) {
    sessionStorage.removeItem(TOKEN);
    showSignIn("");
  } else if (error instanceof Forbidden) {
    sessionStorage.removeItem(TOKEN);
    showSignIn("This account cannot see the dashboard: it needs the analyst or admin role.");
  } else {
    $("status").textContent = `Could not load the figures: ${error.message}`;
    document.body.dataset.state = "error";
  }
}

function showSignIn(message) {
  $("dashboard").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message;
  document.body.dataset.state = "signed-out";
}

function showDashboard() {
  $("sign-in").hidden = true;
  $("dashboard").hidden = false;
  $("sign-out").hidden = false;
}

async function signIn(event) {
  event.preventDefault();
  $("sign-in-error").textContent = "";
  const response = await fetch("/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email: $("email").value, password: $("password").value }),
  });
  const body = await response.json();
  if (!response.ok) {
    $("sign-in-error").textContent = body.error ? body.error.message : "Sign-in failed.";
    return;
  }
  sessionStorage.setItem(TOKEN, body.access_token);
  $("password").value = "";
  await start();
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", signIn);
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  for (const id of ["arm", "surface"]) $(id).addEventListener("change", refresh);
  $("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN);
    showSignIn("");
  });
  if (sessionStorage.getItem(TOKEN)) start();
  else showSignIn("");
});
