// TrafficSplitter: one slider per route version, integer weights always summing to 100.
//
// The rules (rebalance, presets, debounce) are exported for node's test runner
// (widgets/test/traffic_splitter.test.js); `render` is the anywidget view. The Python side
// (overlay_sdk/widgets/traffic_splitter.py) validates and applies through the SDK: this
// module only proposes a change ({type: "apply", weights, shadow, shadowPercent}).

/** Split `total` into integers proportional to `shares` (largest remainder; ties go to
 * the earlier index; all-zero shares split evenly). Sums to exactly `total`. */
export function distribute(total, shares) {
  if (shares.length === 0) return [];
  const sum = shares.reduce((a, b) => a + b, 0);
  const exact = shares.map((s) => (sum > 0 ? (total * s) / sum : total / shares.length));
  const out = exact.map((x) => Math.floor(x + 1e-9));
  let left = total - out.reduce((a, b) => a + b, 0);
  const order = exact
    .map((x, i) => [x - out[i], i])
    .sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let k = 0; k < order.length && left > 0; k += 1, left -= 1) out[order[k][1]] += 1;
  return out;
}

/** Move slider `index` to `value`: the unlocked others share what is left in proportion
 * to their weights; locked sliders never move (a locked `index` neither). The moved slider is clamped to what the
 * locked ones leave. Returns new integer weights summing to 100 (the input is kept). */
export function rebalance(weights, index, value, locked) {
  if (locked[index]) return weights.slice(); // a locked weight does not move
  const n = weights.length;
  const lockedSum = weights.reduce(
    (a, w, i) => a + (i !== index && locked[i] ? w : 0), 0);
  const free = [];
  for (let i = 0; i < n; i += 1) if (i !== index && !locked[i]) free.push(i);
  const room = Math.max(0, 100 - lockedSum);
  let v = Math.round(Number(value));
  if (!Number.isFinite(v)) v = weights[index];
  v = Math.min(Math.max(v, 0), room);
  if (free.length === 0) v = room; // nothing else can give or take
  const out = weights.slice();
  out[index] = v;
  const split = distribute(room - v, free.map((i) => weights[i]));
  free.forEach((i, k) => { out[i] = split[k]; });
  return out;
}

/** A canary preset: `percent` to slider `index`, the rest rebalanced (locks respected). */
export function preset(weights, index, percent, locked) {
  return rebalance(weights, index, percent, locked);
}

/** `fn` called `ms` after the last of a burst of calls (live apply while dragging).
 * `clock` ({setTimeout, clearTimeout}) is injectable for tests. */
export function debounce(fn, ms, clock = globalThis) {
  let timer = null;
  const wrapped = (...args) => {
    if (timer !== null) clock.clearTimeout(timer);
    timer = clock.setTimeout(() => { timer = null; fn(...args); }, ms);
  };
  wrapped.cancel = () => {
    if (timer !== null) clock.clearTimeout(timer);
    timer = null;
  };
  wrapped.pending = () => timer !== null;
  return wrapped;
}

/** Whether `weights` differ from the applied ones (a change to apply). */
export function changed(weights, applied, shadow, appliedShadow, percent, appliedPercent) {
  return weights.some((w, i) => w !== applied[i]) || shadow !== appliedShadow
    || (shadow !== "" && percent !== appliedPercent);
}

/** A small padlock (SVG: no font needed). */
function padlock() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("class", "ov-split-padlock");
  svg.setAttribute("aria-hidden", "true");
  for (const [tag, attrs] of [["rect", { x: "3", y: "7", width: "10", height: "8", rx: "1.5" }],
    ["path", { d: "M5 7V5a3 3 0 0 1 6 0v2", fill: "none", "stroke-width": "1.6" }]]) {
    const part = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) part.setAttribute(k, v);
    svg.append(part);
  }
  return svg;
}

function render({ model, el }) {
  const root = h("div", { class: "ov-split" });
  el.append(root);
  let weights = [];
  let locked = [];
  let shadow = "";
  let shadowPercent = 100;
  let keys = [];
  let canary = null; // the canary presets' version, as last chosen
  const apply = () => {
    model.send({ type: "apply", weights: Object.fromEntries(keys.map((k, i) => [k, weights[i]])),
      shadow, shadowPercent });
  };
  const live = debounce(apply, model.get("debounce_ms") || 600);

  const fromModel = () => {
    const routes = model.get("routes");
    keys = routes.map((r) => r.key);
    weights = routes.map((r) => r.weight);
    const wasLocked = new Map(keys.map((k, i) => [k, locked[i]]));
    locked = keys.map((k) => wasLocked.get(k) || false);
    shadow = model.get("shadow");
    shadowPercent = model.get("shadow_percent");
  };

  const draw = () => {
    const applied = model.get("routes").map((r) => r.weight);
    const dirty = changed(weights, applied, shadow, model.get("shadow"), shadowPercent,
      model.get("shadow_percent"));
    root.replaceChildren();
    root.append(h("div", { class: "ov-split-title" },
      h("b", {}, model.get("overlay")), ` · revision ${model.get("revision")}`));
    const rows = h("div", { class: "ov-split-rows" });
    keys.forEach((key, i) => {
      const slider = h("input", { type: "range", min: "0", max: "100", step: "1",
        value: String(weights[i]), "aria-label": `weight of ${key}`, "data-key": key });
      const number = h("span", { class: "ov-split-value", "data-key": key }, `${weights[i]}%`);
      slider.addEventListener("input", () => {
        weights = rebalance(weights, i, Number(slider.value), locked);
        rows.querySelectorAll("input[type=range]").forEach((s, j) => { s.value = String(weights[j]); });
        rows.querySelectorAll(".ov-split-value").forEach((s, j) => { s.textContent = `${weights[j]}%`; });
        bar.replaceChildren(...segments());
        applyButton.disabled = false;
      });
      slider.addEventListener("change", () => { if (model.get("live")) live(); else draw(); });
      const lock = h("input", { type: "checkbox", title: "lock this weight",
        "aria-label": `lock ${key}` });
      lock.checked = locked[i];
      slider.disabled = locked[i]; // a locked weight moves neither by dragging nor by others
      lock.addEventListener("change", () => { locked[i] = lock.checked; draw(); });
      rows.append(h("label", { class: "ov-split-lock" }, lock, padlock()),
        h("span", { class: "ov-split-key" }, key), slider, number);
    });
    const segments = () => keys.map((k, i) => h("span", {
      class: `ov-split-seg ov-c${i % 6}`, style: `width:${weights[i]}%`, title: `${k} ${weights[i]}%` }));
    const bar = h("div", { class: "ov-split-bar" }, ...segments());
    root.append(bar, rows);

    // canary presets: percent to the chosen version
    if (keys.length > 1) {
      const target = h("select", { "aria-label": "canary version" },
        ...keys.map((k) => h("option", { value: k }, k)));
      target.value = keys.includes(canary) ? canary : keys[keys.length - 1];
      target.addEventListener("change", () => { canary = target.value; });
      const presets = [1, 5, 25, 50].map((p) => h("button", { class: "ov-split-preset",
        onclick: () => {
          const index = keys.indexOf(target.value);
          if (locked[index]) return; // (the buttons are disabled then)
          weights = preset(weights, index, p, locked);
          draw();
          if (model.get("live")) live();
        } }, `${p}%`));
      const lockPresets = () => presets.forEach((b) => {
        b.disabled = locked[keys.indexOf(target.value)];
      });
      target.addEventListener("change", lockPresets);
      lockPresets();
      root.append(h("div", { class: "ov-split-presets" }, "canary ", target, ...presets));
    }

    // shadow: a version whose output is recorded, never returned
    const choices = model.get("shadow_choices");
    const pick = h("select", { "aria-label": "shadow version" }, h("option", { value: "" }, "none"),
      ...choices.map((k) => h("option", { value: k }, k)));
    pick.value = shadow;
    pick.addEventListener("change", () => { shadow = pick.value; draw(); if (model.get("live")) live(); });
    const percent = h("input", { type: "number", min: "0", max: "100", step: "any",
      value: String(shadowPercent), "aria-label": "shadow percent", class: "ov-split-percent" });
    percent.disabled = shadow === "";
    percent.addEventListener("change", () => {
      shadowPercent = Number(percent.value);
      draw();
      if (model.get("live")) live();
    });
    root.append(h("div", { class: "ov-split-shadow" }, "shadow ", pick, " at ", percent, " %"));

    const applyButton = h("button", { class: "ov-split-apply", onclick: () => { live.cancel(); apply(); } },
      "Apply");
    applyButton.disabled = !dirty || model.get("busy");
    const liveBox = h("input", { type: "checkbox", "aria-label": "live apply" });
    liveBox.checked = model.get("live");
    liveBox.addEventListener("change", () => { model.set("live", liveBox.checked); model.save_changes(); });
    const reset = h("button", { class: "ov-split-reset", onclick: () => { fromModel(); draw(); } }, "Reset");
    reset.disabled = !dirty;
    root.append(h("div", { class: "ov-split-actions" }, applyButton, reset,
      h("label", {}, liveBox, " live apply")));

    const error = model.get("error");
    if (error && error.message) {
      root.append(h("div", { class: "ov-split-error", role: "alert" },
        error.field ? h("code", {}, error.field) : "", error.field ? ": " : "", error.message));
    }
    statusNode = h("div", { class: "ov-split-status" }, model.get("status_text"));
    root.append(statusNode);
  };
  let statusNode = null;

  const sync = () => { fromModel(); draw(); };
  const redraw = () => draw();
  model.on("change:routes", sync);
  model.on("change:shadow", sync);
  model.on("change:shadow_percent", sync);
  model.on("change:shadow_choices", redraw);
  model.on("change:error", redraw);
  // the gateway's status comes while the user may be dragging: only its line changes
  model.on("change:status_text", () => {
    if (statusNode) statusNode.textContent = model.get("status_text");
  });
  model.on("change:busy", redraw);
  model.on("change:revision", redraw);
  sync();
  return () => live.cancel();
}

export default { render };
