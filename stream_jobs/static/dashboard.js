// relradar dashboard: fetches /api/* (the canned reports) and draws them with Chart.js.
"use strict";

const LABELS = ["fling", "basic_exchange", "master_servant", "business_partner", "buddies",
  "best_friends", "marriage", "dependency", "captive", "love_hate", "ex_friends", "enemies", "none"];
const COLORS = {
  fling: "#f79009", basic_exchange: "#98a2b3", master_servant: "#7a5af8", business_partner: "#2e90fa",
  buddies: "#32d583", best_friends: "#039855", marriage: "#ee46bc", dependency: "#b54708",
  captive: "#fda29b", love_hate: "#f97066", ex_friends: "#d92d20", enemies: "#7a271a", none: "#d0d5dd",
};
const token = new URLSearchParams(location.search).get("token");
const charts = {};

async function api(path, params) {
  const query = new URLSearchParams(params);
  if (token) query.set("token", token);
  const response = await fetch(`${path}?${query}`);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function draw(id, config) {
  if (charts[id]) charts[id].destroy();
  config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options);
  charts[id] = new Chart(document.getElementById(id), config);
  return charts[id];
}

const day = (iso) => iso.slice(0, 10);

function drawMix(rows) {
  const days = [...new Set(rows.map((r) => day(r.day)))].sort();
  const present = LABELS.filter((l) => rows.some((r) => r.label === l));
  const datasets = present.map((label) => ({
    label, backgroundColor: COLORS[label],
    data: days.map((d) => rows.filter((r) => r.label === label && day(r.day) === d).reduce((s, r) => s + r.n, 0)),
  }));
  draw("mix", { type: "bar", data: { labels: days, datasets },
    options: { scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: "messages" } } } } });
  return { days: days.length, total: datasets.reduce((s, d) => s + d.data.reduce((a, b) => a + b, 0), 0), labels: present };
}

function drawProblem(rows, alerts) {
  const days = rows.map((r) => day(r.day));
  const alertDays = new Set(alerts.map((a) => day(a.window_start)));
  const markers = rows.map((r) => (alertDays.has(day(r.day)) ? r.share : null));
  draw("problem", { type: "line", data: { labels: days, datasets: [
    { label: "problem share", data: rows.map((r) => r.share), borderColor: "#d92d20", pointRadius: 2 },
    { label: "trailing baseline", data: rows.map((r) => r.baseline), borderColor: "#98a2b3", borderDash: [6, 4], pointRadius: 0 },
    { label: "alert", data: markers, type: "line", showLine: false, pointRadius: 7, pointStyle: "triangle", backgroundColor: "#7a271a", borderColor: "#7a271a" },
  ] }, options: { scales: { y: { min: 0, title: { display: true, text: "share of messages" } } } } });
  return { points: rows.length, alerts: markers.filter((m) => m !== null).length };
}

function drawVoice(rows) {
  const labels = LABELS.filter((l) => rows.some((r) => r.label === l));
  const brands = [...new Set(rows.map((r) => r.brand))];
  const palette = ["#2e90fa", "#f79009", "#32d583", "#ee46bc", "#7a5af8", "#f97066", "#039855", "#98a2b3"];
  const datasets = brands.map((brand, i) => ({
    label: brand, backgroundColor: palette[i % palette.length],
    data: labels.map((l) => (rows.find((r) => r.label === l && r.brand === brand) || { share_of_voice: 0 }).share_of_voice),
  }));
  draw("voice", { type: "bar", data: { labels, datasets }, options: { indexAxis: "y",
    plugins: { legend: { display: brands.length <= 12 } },
    scales: { x: { stacked: true, max: 1, title: { display: true, text: "share of the label's messages" } }, y: { stacked: true } } } });
  return { labels: labels.length, brands: brands.length };
}

function drawAlerts(rows) {
  const box = document.getElementById("alerts");
  if (!rows.length) { box.innerHTML = '<div class="empty">No alerts for this brand in the stored data.</div>'; return 0; }
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  box.innerHTML = "<table><tr><th>hour (UTC)</th><th>brand</th><th>label</th><th>share</th><th>expected</th><th>lift</th><th>examples</th></tr>" +
    rows.map((a) => `<tr><td>${esc(a.window_start.slice(0, 16).replace("T", " "))}</td><td>${esc(a.brand)}</td>` +
      `<td class="label">${esc(a.label)}</td><td>${(a.observed_share * 100).toFixed(1)}%</td>` +
      `<td>${(a.expected_share * 100).toFixed(1)}%</td><td>${a.lift.toFixed(1)}×</td>` +
      `<td class="examples">${a.examples.map((e) => `“${esc(e.slice(0, 160))}”`).join("<br>")}</td></tr>`).join("") + "</table>";
  return rows.length;
}

async function refresh() {
  const brand = document.getElementById("brand").value;
  const days = document.getElementById("days").value;
  const status = document.getElementById("status");
  status.textContent = "loading…";
  try {
    const [mix, problem, voice, alerts] = await Promise.all([
      api("/api/mix", { brand, days }), api("/api/problem-share", { brand, days }),
      api("/api/share-of-voice", { days }), api("/api/alerts", { brand }),
    ]);
    const rendered = { brand, mix: drawMix(mix), problem: drawProblem(problem, alerts),
      voice: drawVoice(voice), alerts: drawAlerts(alerts) };
    // What the charts hold, for people (status line) and for the browser test (data attribute).
    document.body.dataset.rendered = JSON.stringify(rendered);
    status.textContent = `${rendered.mix.total.toLocaleString()} messages over ${rendered.mix.days} days`;
  } catch (error) {
    status.innerHTML = `<span class="error">${error.message}</span>`;
    document.body.dataset.rendered = JSON.stringify({ error: error.message });
  }
}

async function start() {
  const brands = await api("/api/brands", {});
  const select = document.getElementById("brand");
  const wanted = new URLSearchParams(location.search).get("brand");
  for (const b of brands) select.add(new Option(`${b.brand} (${b.messages.toLocaleString()})`, b.brand, false, b.brand === wanted));
  const days = document.getElementById("days");
  const wantedDays = new URLSearchParams(location.search).get("days");
  if (wantedDays) {
    if (![...days.options].some((o) => o.value === wantedDays)) days.add(new Option(wantedDays));
    days.value = wantedDays;
  }
  select.onchange = refresh;
  document.getElementById("days").onchange = refresh;
  if (brands.length) await refresh();
  else document.getElementById("status").textContent = "no data yet";
}

start();
