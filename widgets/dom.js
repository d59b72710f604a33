// The DOM helpers every widget module uses. Not a module of its own: overlay_sdk's
// widgets/assets.py puts this text before each widget's ES module (anywidget loads a module
// from a string, so a module cannot import a sibling file).

/** An element: h("div", {class: "x", onclick: f}, child, "text"). */
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

/** Draw the widget held by trait `name` (a plotly FigureWidget, another widget) into
 * `slot`, as a child view of the page's widget manager; returns the view. */
async function mount(model, name, slot) {
  const ref = model.get(name);
  if (!ref || !model.widget_manager) return null;
  const child = await model.widget_manager.get_model(String(ref).replace("IPY_MODEL_", ""));
  const view = await model.widget_manager.create_view(child, {});
  slot.replaceChildren(view.el);
  if (view.trigger) view.trigger("displayed");
  return view;
}
