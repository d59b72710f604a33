// DriftView: a heatmap of adjusted p-values (feature x window) for one model version, the
// clicked cell's distributions, the overlay's drift alerts. The charts are plotly
// FigureWidgets held by the Python side (overlay_sdk/widgets/drift_view.py) and drawn here
// as child views; a click on the heatmap reaches Python through plotly's own on_click.

/** A short, readable time: "2026-11-25 14:00" (UTC) from an ISO string. */
export function shortTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toISOString().slice(0, 16).replace("T", " ");
}

/** The alerts of `version` first (the one shown), newest first within each group. */
export function orderAlerts(alerts, version) {
  return alerts.slice().sort((a, b) => (b.version === version) - (a.version === version)
    || String(b.time).localeCompare(String(a.time)));
}

function render({ model, el }) {
  const root = h("div", { class: "ov-drift" });
  el.append(root);
  const windowBox = h("select", { "aria-label": "window length" },
    ...["15min", "30min", "1h", "6h", "1D"].map((w) => h("option", { value: w }, w)));
  const sinceBox = h("input", { type: "text", placeholder: "since (e.g. a day ago)",
    "aria-label": "since" });
  const versionBox = h("select", { "aria-label": "model version" });
  const refresh = h("button", { class: "ov-drift-refresh" }, "Refresh");
  const head = h("div", { class: "ov-drift-head" }, h("b", {}, model.get("overlay")),
    " window ", windowBox, " ", sinceBox, " version ", versionBox, " ", refresh);
  const progress = h("div", { class: "ov-drift-progress", role: "status" });
  const error = h("div", { class: "ov-drift-error", role: "alert" });
  const summary = h("div", { class: "ov-drift-summary" });
  const heatmap = h("div", { class: "ov-drift-heatmap" });
  const detail = h("div", { class: "ov-drift-detail" });
  const alerts = h("div", { class: "ov-drift-alerts" });
  root.append(head, progress, error, summary, heatmap, alerts, detail);
  const views = [];

  refresh.addEventListener("click", () => model.send({ type: "settings",
    window: windowBox.value, since: sinceBox.value }));
  versionBox.addEventListener("change", () => model.send({ type: "version",
    version: versionBox.value }));

  const drawHead = () => {
    windowBox.value = model.get("window");
    sinceBox.value = model.get("since");
    versionBox.replaceChildren(...model.get("versions").map((v) => h("option", { value: v }, v)));
    versionBox.value = model.get("version");
  };
  const drawState = () => {
    const loading = model.get("loading");
    progress.replaceChildren(...(loading ? [h("span", { class: "ov-drift-spinner" }),
      ` ${model.get("progress") || "loading..."}`] : []));
    progress.hidden = !loading;
    refresh.disabled = loading;
    const e = model.get("error");
    error.hidden = !(e && e.message);
    error.replaceChildren(...(e && e.message ? [e.field ? h("code", {}, e.field) : "",
      e.field ? ": " : "", e.message] : []));
    summary.textContent = model.get("summary");
  };
  const drawAlerts = () => {
    const rows = orderAlerts(model.get("alerts"), model.get("version"));
    alerts.replaceChildren(h("div", { class: "ov-drift-alerts-title" },
      `Drift alerts (${rows.length})`),
    ...(rows.length ? rows.map((a) => h("div", { class: "ov-drift-alert" },
      h("span", { class: "ov-drift-when" }, shortTime(a.time)), " ",
      h("code", {}, a.version), " ", h("b", {}, a.subject), " ",
      `${shortTime(a.first_window)} to ${shortTime(a.last_window)}`))
      : [h("div", { class: "ov-drift-none" }, "none")]));
  };

  model.on("change:window", drawHead);
  model.on("change:since", drawHead);
  model.on("change:versions", drawHead);
  model.on("change:version", () => { drawHead(); drawAlerts(); });
  model.on("change:loading", drawState);
  model.on("change:progress", drawState);
  model.on("change:error", drawState);
  model.on("change:summary", drawState);
  model.on("change:alerts", drawAlerts);
  drawHead();
  drawState();
  drawAlerts();
  mount(model, "heatmap", heatmap).then((v) => v && views.push(v));
  mount(model, "detail", detail).then((v) => v && views.push(v));
  return () => views.forEach((v) => v.remove && v.remove());
}

export default { render };
