// ModelRegistry: models and their versions, register from an MLflow run, roll back an alias.
//
// The rules (formatting, sorting, which buttons are enabled) are exported for node's test
// runner (widgets/test/model_registry.test.js); `render` is the anywidget view. The Python
// side (overlay_sdk/widgets/model_registry.py) does everything through the SDK: this module
// only asks ({type: "refresh" | "select" | "register" | "preview" | "confirm" | "cancel"}).
// A rollback takes two steps: "preview" (a dry run, shown as `fraud@serving: version 3 -> 2`)
// then "confirm" with what was shown; "cancel" changes nothing.

export const SHORT_SHA = 12;

/** The first `length` hex characters of a SHA-256 ("" when there is none). */
export function shortSha(sha, length = SHORT_SHA) {
  return typeof sha === "string" ? sha.slice(0, length) : "";
}

/** When `iso` (ISO 8601 UTC) was, for a person: "just now", "5 min ago", "3 h ago",
 * "yesterday", "4 days ago", else the date (UTC, YYYY-MM-DD). `now` in ms since the epoch. */
export function formatCreated(iso, now = Date.now()) {
  if (!iso) return "";
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return String(iso);
  const s = (now - at) / 1000;
  if (s < -60) return new Date(at).toISOString().slice(0, 10); // a clock ahead: the date
  if (s < 45) return "just now";
  if (s < 90 * 60) return `${Math.max(1, Math.round(s / 60))} min ago`;
  if (s < 24 * 3600) return `${Math.round(s / 3600)} h ago`;
  if (s < 48 * 3600) return "yesterday";
  if (s < 7 * 24 * 3600) return `${Math.floor(s / (24 * 3600))} days ago`;
  return new Date(at).toISOString().slice(0, 10);
}

/** Compare two cells of column `key`: versions as numbers, missing values last. */
function compareCells(a, b, key) {
  const x = a[key];
  const y = b[key];
  const xMissing = x === null || x === undefined || x === "";
  const yMissing = y === null || y === undefined || y === "";
  if (xMissing || yMissing) return xMissing === yMissing ? 0 : xMissing ? 1 : -1;
  if (key === "version") return Number(x) - Number(y);
  if (Array.isArray(x) || Array.isArray(y)) return String(x).localeCompare(String(y));
  return String(x).localeCompare(String(y), undefined, { numeric: true });
}

/** Rows sorted by column `key` (descending: newest/highest first); missing cells always
 * last; ties by version, newest first. The input is kept. */
export function sortRows(rows, key = "version", descending = true) {
  return rows
    .map((row, i) => [row, i])
    .sort(([a, i], [b, j]) => {
      const c = compareCells(a, b, key);
      const missing = (r) => r[key] === null || r[key] === undefined || r[key] === "";
      if (c !== 0) return missing(a) || missing(b) ? c : descending ? -c : c;
      return Number(b.version) - Number(a.version) || i - j;
    })
    .map(([row]) => row);
}

/** A version's aliases as badges: the serving alias first (highlighted), then by name. */
export function badges(aliases, serving) {
  return [...(aliases || [])]
    .sort((a, b) => (a === serving ? -1 : b === serving ? 1 : a.localeCompare(b)))
    .map((alias) => ({ alias, serving: alias === serving }));
}

/** Register is possible with a model name and a URI, while Python is not busy. */
export function canRegister(form, busy) {
  return !busy && Boolean(form.name && form.name.trim()) && Boolean(form.uri && form.uri.trim());
}

/** What the rollback target selector offers: "previous", then every version but the one
 * the alias points at now (`current`), newest first. */
export function targetChoices(versions, current) {
  const numbers = versions.map((v) => String(v.version))
    .filter((v) => v !== String(current ?? ""))
    .sort((a, b) => Number(b) - Number(a));
  return ["previous", ...numbers];
}

/** Preview is possible for a chosen model, alias and target, while Python is not busy and
 * no previewed rollback awaits its confirmation (confirm or cancel it first). */
export function canPreview(choice, busy, pending) {
  return !busy && !confirmState(pending, busy).open && Boolean(choice.model)
    && Boolean(choice.alias) && Boolean(choice.to);
}

/** The confirmation step: Confirm and Cancel exist only while a previewed rollback is
 * pending, and are disabled while Python works. */
export function confirmState(pending, busy) {
  const open = Boolean(pending && pending.name && pending.to_version);
  return { open, confirm: open && !busy, cancel: open && !busy };
}

/** The confirm message: exactly the rollback the user saw (Python refuses another). */
export function confirmMessage(pending) {
  return { type: "confirm", name: pending.name, alias: pending.alias,
    from_version: pending.from_version ?? null, to_version: pending.to_version };
}

/** Which input an error's field (as the SDK names it) belongs to: the register form's
 * `name`, `uri` (the SDK calls it `model`) or `label`, the rollback's `alias` or `to`. */
export function inputFor(error) {
  if (!error || !error.field) return null;
  const root = String(error.field).split(/[.[]/)[0];
  const inputs = error.action === "register"
    ? { name: "name", model: "uri", uri: "uri", label: "label" }
    : error.action === "rollback" ? { alias: "alias", to: "to", name: "name" } : {};
  return inputs[root] || null;
}

const COLUMNS = [
  ["version", "Version"], ["label", "Label"], ["sha256", "SHA-256"], ["created_at", "Created"],
  ["source", "Source"], ["flavor", "Flavor"], ["aliases", "Aliases"],
];

function render({ model, el }) {
  const root = h("div", { class: "ov-reg" });
  el.append(root);
  const form = { name: "", uri: "", label: "" };
  let nameTouched = false;
  let sentRegister = false;
  let rollbackOpen = false;
  let rbAlias = "";
  let rbTo = "previous";
  let sortKey = "version";
  let sortDesc = true;

  const send = (content) => model.send(content);

  const errorBox = (error) => h("div", { class: "ov-reg-error", role: "alert" },
    error.field ? h("code", {}, error.field) : "", error.field ? ": " : "", error.message);

  const input = (key, attrs, error) => {
    const node = h("input", { type: "text", value: form[key], ...attrs });
    if (inputFor(error) === key) {
      node.classList.add("ov-reg-invalid");
      node.setAttribute("aria-invalid", "true");
    }
    return node;
  };

  const draw = () => {
    const busy = model.get("busy");
    const error = model.get("error") || {};
    const selected = model.get("selected");
    const models = model.get("models");
    const serving = model.get("alias");
    const pending = model.get("pending") || {};
    const state = confirmState(pending, busy);
    if (state.open && pending.name === selected) rollbackOpen = true;
    if (!nameTouched) form.name = selected || "";
    root.replaceChildren();
    root.classList.toggle("ov-reg-is-busy", busy);

    // header: title, refresh, busy indicator
    const refresh = h("button", { class: "ov-reg-refresh", title: "re-read the registry",
      onclick: () => send({ type: "refresh" }) }, "⟳ Refresh");
    refresh.disabled = busy;
    root.append(h("div", { class: "ov-reg-head" },
      h("b", {}, "Models"), h("span", { class: "ov-reg-count" }, ` ${models.length}`),
      h("span", { class: "ov-reg-spacer" }), busy ? h("span", { class: "ov-reg-busy",
        role: "status", "aria-live": "polite" }, h("span", { class: "ov-reg-spinner" }), " working…")
        : "", refresh));

    // models
    const modelTable = h("table", { class: "ov-reg-table ov-reg-models" },
      h("thead", {}, h("tr", {}, ...["Name", "Versions", "Latest", `@${serving}`, "Aliases", "Updated"]
        .map((t) => h("th", {}, t)))));
    const body = h("tbody");
    for (const row of models) {
      const tr = h("tr", { class: row.name === selected ? "ov-reg-selected" : "", tabindex: "0",
        "data-model": row.name, "aria-selected": String(row.name === selected) },
      h("td", { class: "ov-reg-name" }, row.name),
      h("td", { class: "ov-reg-num" }, String(row.versions)),
      h("td", { class: "ov-reg-num" }, row.latest ?? "–"),
      h("td", { class: "ov-reg-num" }, row.serving ?? "–"),
      h("td", {}, ...Object.entries(row.aliases).map(([a, v]) => h("span", {
        class: a === serving ? "ov-reg-badge ov-reg-badge-serving" : "ov-reg-badge" }, `${a} → ${v}`))),
      h("td", { title: row.updated_at || "" }, formatCreated(row.updated_at)));
      const choose = () => { if (!busy && row.name !== selected) send({ type: "select", name: row.name }); };
      tr.addEventListener("click", choose);
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") choose(); });
      body.append(tr);
    }
    modelTable.append(body);
    root.append(models.length ? modelTable
      : h("div", { class: "ov-reg-empty" }, "No models yet: register one below."));
    if (error.message && !["register", "rollback"].includes(error.action)) root.append(errorBox(error));

    // the selected model's versions
    if (selected) {
      const versions = model.get("versions");
      const row = models.find((m) => m.name === selected) || { aliases: {} };
      const rollButton = h("button", { class: "ov-reg-rollback",
        onclick: () => { rollbackOpen = !rollbackOpen; draw(); } }, "Roll back…");
      rollButton.disabled = busy || versions.length < 1;
      root.append(h("div", { class: "ov-reg-head ov-reg-sub" },
        h("b", {}, selected), " versions", h("span", { class: "ov-reg-spacer" }), rollButton));
      const head = h("tr", {}, ...COLUMNS.map(([key, title]) => {
        const arrow = key === sortKey ? (sortDesc ? " ▾" : " ▴") : "";
        return h("th", { class: "ov-reg-sortable", "data-key": key, title: `sort by ${title}`,
          onclick: () => {
            if (sortKey === key) sortDesc = !sortDesc;
            else { sortKey = key; sortDesc = key === "version" || key === "created_at"; }
            draw();
          } }, title + arrow);
      }));
      const vbody = h("tbody");
      for (const v of sortRows(versions, sortKey, sortDesc)) {
        const isNew = v.version === model.get("selected_version");
        vbody.append(h("tr", { class: isNew ? "ov-reg-new" : "", "data-version": v.version },
          h("td", { class: "ov-reg-num" }, v.ui ? h("a", { href: v.ui, target: "_blank",
            rel: "noopener", title: "open in the MLflow UI" }, v.version) : v.version),
          h("td", {}, v.label ?? ""),
          h("td", { class: "ov-reg-sha", title: v.sha256 }, v.short_sha || shortSha(v.sha256)),
          h("td", { title: v.created_at || "" }, formatCreated(v.created_at)),
          h("td", { class: "ov-reg-source", title: v.source }, v.source),
          h("td", {}, v.flavor),
          h("td", {}, ...badges(v.aliases, serving).map((b) => h("span", {
            class: b.serving ? "ov-reg-badge ov-reg-badge-serving" : "ov-reg-badge",
            title: b.serving ? "the serving alias" : "" }, b.alias)))));
      }
      root.append(h("table", { class: "ov-reg-table ov-reg-versions" }, h("thead", {}, head), vbody));

      // rollback: alias, target, preview; then the confirmation step
      if (rollbackOpen) {
        const choices = [...model.get("alias_choices")];
        const shown = state.open && pending.name === selected;
        if (shown) { // the previewed rollback (maybe previewed from code) is what the form shows
          rbAlias = pending.alias;
          rbTo = pending.to;
          if (!choices.includes(rbAlias)) choices.push(rbAlias);
        }
        if (!choices.includes(rbAlias)) rbAlias = choices.includes(serving) ? serving : choices[0] || "";
        const aliasPick = h("select", { "aria-label": "alias to roll back" },
          ...choices.map((a) => h("option", { value: a }, a)));
        aliasPick.value = rbAlias;
        const targets = targetChoices(versions, row.aliases[rbAlias]);
        if (shown && !targets.includes(rbTo)) targets.push(rbTo); // a label, a time...
        if (!targets.includes(rbTo)) rbTo = "previous";
        const toPick = h("select", { "aria-label": "roll back to" },
          ...targets.map((t) => h("option", { value: t },
            t === "previous" || !/^[0-9]+$/.test(t) ? t : `version ${t}`)));
        toPick.value = rbTo;
        for (const [pick, key] of [[aliasPick, "alias"], [toPick, "to"]]) {
          if (inputFor(error) === key) pick.classList.add("ov-reg-invalid");
        }
        aliasPick.addEventListener("change", () => { rbAlias = aliasPick.value; draw(); });
        toPick.addEventListener("change", () => { rbTo = toPick.value; draw(); });
        aliasPick.disabled = state.open;
        toPick.disabled = state.open;
        const preview = h("button", { class: "ov-reg-preview",
          onclick: () => send({ type: "preview", name: selected, alias: rbAlias, to: rbTo }) },
        "Preview");
        preview.disabled = !canPreview({ model: selected, alias: rbAlias, to: rbTo }, busy, pending);
        const close = h("button", { class: "ov-reg-close", onclick: () => {
          rollbackOpen = false;
          if (state.open) send({ type: "cancel" });
          draw();
        } }, "Close");
        close.disabled = busy;
        const panel = h("div", { class: "ov-reg-panel" },
          h("div", { class: "ov-reg-row" }, "move ", aliasPick, " back to ", toPick, preview, close));
        if (shown) {
          const confirm = h("button", { class: "ov-reg-confirm",
            onclick: () => send(confirmMessage(pending)) }, "Confirm");
          confirm.disabled = !state.confirm;
          const cancel = h("button", { class: "ov-reg-cancel",
            onclick: () => send({ type: "cancel" }) }, "Cancel");
          cancel.disabled = !state.cancel;
          panel.append(h("div", { class: "ov-reg-confirmbox", role: "alertdialog",
            "aria-label": "confirm the rollback" },
          h("span", { class: "ov-reg-pending" }, `${pending.text}.`), confirm, cancel));
        }
        if (error.message && error.action === "rollback") panel.append(errorBox(error));
        root.append(panel);
      }
    }

    // register from an MLflow run
    const nameInput = input("name", { "aria-label": "model name", placeholder: "fraud",
      class: "ov-reg-in-name" }, error);
    const uriInput = input("uri", { "aria-label": "run URI", placeholder: "runs:/<run_id>/model",
      class: "ov-reg-in-uri" }, error);
    const labelInput = input("label", { "aria-label": "label", placeholder: "label (optional)",
      class: "ov-reg-in-label" }, error);
    const register = h("button", { class: "ov-reg-register", onclick: () => {
      sentRegister = true;
      send({ type: "register", name: form.name, uri: form.uri, label: form.label });
    } }, "Register");
    register.disabled = !canRegister(form, busy);
    const typed = (node, key) => node.addEventListener("input", () => {
      form[key] = node.value;
      if (key === "name") nameTouched = true;
      register.disabled = !canRegister(form, model.get("busy"));
    });
    typed(nameInput, "name"); typed(uriInput, "uri"); typed(labelInput, "label");
    const section = h("div", { class: "ov-reg-register-form" },
      h("div", { class: "ov-reg-sub" }, h("b", {}, "Register from MLflow run")),
      h("div", { class: "ov-reg-row" }, nameInput, uriInput, labelInput, register));
    if (error.message && error.action === "register") section.append(errorBox(error));
    root.append(section);

    const notice = model.get("notice");
    if (notice) root.append(h("div", { class: "ov-reg-notice", role: "status" }, notice));
  };

  const onBusy = () => {
    // a registration that went through: clear its URI and label for the next one
    if (!model.get("busy") && sentRegister) {
      sentRegister = false;
      if (!(model.get("error") || {}).message) { form.uri = ""; form.label = ""; }
    }
    draw();
  };
  const onSelected = () => { nameTouched = false; rollbackOpen = false; draw(); };
  for (const trait of ["models", "versions", "selected_version", "alias_choices", "pending",
    "error", "notice", "alias"]) model.on(`change:${trait}`, draw);
  model.on("change:busy", onBusy);
  model.on("change:selected", onSelected);
  draw();
}

export default { render };
