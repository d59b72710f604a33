// CostView: spend over time stacked by version, cost per inference, the daily budget line
// (a plotly FigureWidget held by overlay_sdk/widgets/cost_view.py, drawn as a child view),
// with totals and a table per version.

/** Dollars as people read them: $1,234.56, $0.0042 (small amounts keep 2 significant
 * digits), "-" when unknown. */
export function usd(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "-";
  if (value !== 0 && Math.abs(value) < 0.01) return `$${Number(value.toPrecision(2))}`;
  return `$${value.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
}

/** Today's spend against the daily budget: {share, state} with state ok|near|over. */
export function budgetState(spentToday, budget) {
  if (!budget) return null;
  const share = spentToday / budget;
  return { share, state: share >= 1 ? "over" : share >= 0.8 ? "near" : "ok" };
}

function budgetBadge(today, budget) {
  const { share, state } = budgetState(today, budget);
  return h("span", { class: `ov-cost-budget ov-cost-${state}`,
    title: "today's spend (UTC) against spec.budget.usdPerDay" },
  `today ${usd(today)} of ${usd(budget)} a day (${Math.round(share * 100)}%)`);
}

function render({ model, el }) {
  const root = h("div", { class: "ov-cost" });
  el.append(root);
  const byBox = h("select", { "aria-label": "group by" },
    h("option", { value: "hour" }, "per hour"), h("option", { value: "day" }, "per day"));
  const sinceBox = h("input", { type: "text", placeholder: "since (e.g. a week ago)",
    "aria-label": "since" });
  const refresh = h("button", {}, "Refresh");
  refresh.addEventListener("click", () => model.send({ type: "settings", by: byBox.value,
    since: sinceBox.value }));
  const totals = h("div", { class: "ov-cost-totals" });
  const error = h("div", { class: "ov-cost-error", role: "alert" });
  const chart = h("div", { class: "ov-cost-chart" });
  const table = h("table", { class: "ov-cost-table" });
  root.append(h("div", { class: "ov-cost-head" }, h("b", {}, model.get("title")), " ", byBox,
    " ", sinceBox, " ", refresh), error, totals, chart, table);

  const draw = () => {
    byBox.value = model.get("by");
    sinceBox.value = model.get("since");
    const loading = model.get("loading");
    refresh.disabled = loading;
    const e = model.get("error");
    error.hidden = !(e && e.message);
    error.replaceChildren(...(e && e.message ? [e.field ? h("code", {}, e.field) : "",
      e.field ? ": " : "", e.message] : []));
    const calls = model.get("calls");
    const total = model.get("total_usd");
    const budget = model.get("budget_usd_per_day");
    totals.replaceChildren(
      loading ? h("span", { class: "ov-cost-loading" }, "loading...") : "",
      h("span", {}, h("b", {}, usd(total)), ` spent on ${calls.toLocaleString("en-US")} calls`),
      budget ? budgetBadge(model.get("today_usd"), budget) : "");
    const rows = model.get("rows");
    table.replaceChildren(h("tr", {}, h("th", {}, "version"), h("th", {}, "calls"),
      h("th", {}, "spend"), h("th", {}, "per call")),
    ...rows.map((r) => h("tr", {}, h("td", {}, h("code", {}, r.label)),
      h("td", {}, r.calls.toLocaleString("en-US")), h("td", {}, usd(r.cost_usd)),
      h("td", {}, usd(r.usd_per_call)))));
  };
  for (const name of ["by", "since", "loading", "error", "calls", "total_usd", "today_usd",
    "budget_usd_per_day", "rows"]) model.on(`change:${name}`, draw);
  draw();
  let view = null;
  mount(model, "spend", chart).then((v) => { view = v; });
  return () => view && view.remove && view.remove();
}

export default { render };
