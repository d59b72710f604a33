// Dashboard: one overlay's widgets in tabs (traffic, drift, cost, topology) under a header.
// Each tab's widget is a child view (overlay_sdk/widgets/dashboard.py holds them), drawn the
// first time its tab is shown: plotly sizes its charts to a visible container.

export const TABS = [["traffic", "Traffic"], ["drift", "Drift"], ["cost", "Cost"],
  ["topology", "Topology"]];

/** The header line: "passthrough · revision 7 · fraud:1 90%, fraud:2 10% · shadow ...". */
export function headerLine(header) {
  if (!header || header.error) return header ? header.error : "";
  return [header.mode, `revision ${header.revision}`, header.routes,
    header.shadow ? `shadow ${header.shadow}` : ""].filter(Boolean).join(" · ");
}

function render({ model, el }) {
  const root = h("div", { class: "ov-dash" });
  el.append(root);
  const title = h("div", { class: "ov-dash-title" });
  const line = h("div", { class: "ov-dash-line" });
  const loading = h("div", { class: "ov-dash-loading", role: "status" });
  const bar = h("div", { class: "ov-dash-tabs", role: "tablist" });
  const panes = {};
  const views = [];
  const mounted = new Set();
  const show = (name) => {
    for (const [key] of TABS) {
      panes[key].hidden = key !== name;
      bar.querySelector(`[data-tab="${key}"]`).setAttribute("aria-selected", String(key === name));
    }
    if (!mounted.has(name)) {
      mounted.add(name);
      mount(model, name, panes[name]).then((v) => v && views.push(v));
    }
  };
  for (const [key, label] of TABS) {
    panes[key] = h("div", { class: "ov-dash-pane", role: "tabpanel", "data-pane": key });
    bar.append(h("button", { class: "ov-dash-tab", role: "tab", "data-tab": key,
      onclick: () => { model.set("tab", key); model.save_changes(); show(key); } }, label));
  }
  root.append(title, line, loading, bar, ...TABS.map(([key]) => panes[key]));

  const drawHeader = () => {
    const header = model.get("header");
    title.replaceChildren(h("b", {}, model.get("overlay")),
      header.host ? h("span", { class: "ov-dash-host" }, ` in front of ${header.host}`) : "");
    line.textContent = headerLine(header);
  };
  const drawLoading = () => {
    const text = model.get("loading");
    loading.hidden = !text;
    loading.replaceChildren(...(text ? [h("span", { class: "ov-dash-spinner" }), ` ${text}`] : []));
  };
  model.on("change:header", drawHeader);
  model.on("change:loading", drawLoading);
  drawHeader();
  drawLoading();
  show(model.get("tab"));
  return () => views.forEach((v) => v.remove && v.remove());
}

export default { render };
