// The run graph of a project (cryolab.ui.graph.RunGraph): Python lays it out in layers and
// keeps it current; this module draws it as SVG and reports clicks.
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 170, HEIGHT = 42, GAP_X = 30, GAP_Y = 46, MARGIN = 12;
export const COLOURS = {
  saved: "#e0e0e0", scheduled: "#d7e3fc", launched: "#bcd4ff", running: "#ffd966",
  finished: "#93d69a", failed: "#f08080", aborted: "#c9a0dc",
};

function node(tag, attributes = {}, text) {
  const made = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) made.setAttribute(key, value);
  if (text !== undefined) made.textContent = text;
  return made;
}

function place(run) {
  return { x: MARGIN + run.position * (WIDTH + GAP_X), y: MARGIN + run.layer * (HEIGHT + GAP_Y) };
}

function drawGraph(svg, graph, selected, choose) {
  const runs = new Map((graph.nodes || []).map((run) => [run.id, run]));
  const layers = Math.max(0, ...[...runs.values()].map((r) => r.layer + 1));
  const columns = Math.max(1, ...[...runs.values()].map((r) => r.position + 1));
  svg.setAttribute("width", 2 * MARGIN + columns * (WIDTH + GAP_X) - GAP_X);
  svg.setAttribute("height", 2 * MARGIN + Math.max(1, layers) * (HEIGHT + GAP_Y) - GAP_Y);
  const marker = node("marker", { id: "cryolab-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.append(node("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#888" }));
  const defs = node("defs");
  defs.append(marker);
  svg.replaceChildren(defs);
  for (const edge of graph.edges || []) {
    const from = runs.get(edge.source), to = runs.get(edge.target);
    if (!from || !to) continue;
    const a = place(from), b = place(to);
    const x1 = a.x + WIDTH / 2, y1 = a.y + HEIGHT, x2 = b.x + WIDTH / 2, y2 = b.y;
    const path = node("path", { class: "edge", d: `M ${x1} ${y1} C ${x1} ${y1 + 25}, ${x2} ${y2 - 25}, ${x2} ${y2}` });
    path.append(node("title", {}, `${edge.source}.${edge.output} → ${edge.target} ${edge.param}`));
    svg.append(path);
  }
  for (const run of runs.values()) {
    const { x, y } = place(run);
    const group = node("g", { class: `run${run.id === selected ? " chosen" : ""}`,
      "data-run": run.id, "data-status": run.status });
    group.append(node("rect", { x, y, width: WIDTH, height: HEIGHT, fill: COLOURS[run.status] || "#fff" }));
    const name = run.label ? `${run.id} ${run.label}` : `${run.id} ${run.protocol}`;
    group.append(node("text", { x: x + 8, y: y + 17 }, name.length > 26 ? `${name.slice(0, 25)}…` : name));
    const counts = (run.outputs || []).map((o) => `${o.name} ${o.count}`).join(", ");
    group.append(node("text", { x: x + 8, y: y + 33 }, `${run.status}${counts ? " · " + counts : ""}`.slice(0, 30)));
    group.append(node("title", {}, `${run.protocol} — ${run.status}`));
    group.addEventListener("click", () => choose(run.id));
    svg.append(group);
  }
}

function drawDetails(pane, details) {
  pane.replaceChildren();
  if (!details || details.id === undefined) {
    pane.textContent = details && details.error ? details.error : "Click a run for its details.";
    return;
  }
  const title = document.createElement("h4");
  title.textContent = `Run ${details.id}: ${details.protocol} (${details.status})`;
  const table = document.createElement("table");
  for (const [key, value] of Object.entries(details.params || {})) {
    if (value === null) continue;
    const row = table.insertRow();
    row.insertCell().textContent = key;
    row.insertCell().textContent = typeof value === "object" ? JSON.stringify(value) : String(value);
  }
  const outputs = document.createElement("p");
  outputs.className = "outputs";
  outputs.textContent = "Outputs: " + (Object.entries(details.outputs || {}).map(([name, o]) => `${name} (${o.count}, ${o.state})`).join(", ") || "none");
  const summary = document.createElement("p");
  summary.textContent = details.summary || "";
  const origin = document.createElement("p");
  origin.className = "notebook";
  const link = details.notebook;
  if (link) {
    const cell = link.cell_index !== null && link.cell_index !== undefined
      ? `, cell ${link.cell_index + 1}`
      : link.execution_count ? `, execution [${link.execution_count}]` : "";
    origin.textContent = `From ${link.path}${cell}`;
  }
  const log = document.createElement("pre");
  log.textContent = details.error ? `${details.error}\n\n${details.log}` : details.log || "(no log)";
  pane.append(title, origin, table, outputs, summary, log);
}

export default {
  render({ model, el }) {
    el.classList.add("cryolab-graph");
    const svg = document.createElementNS(SVG, "svg");
    const pane = document.createElement("div");
    pane.className = "details";
    el.append(svg, pane);
    const choose = (id) => { model.set("selected", id); model.save_changes(); };
    const update = () => {
      drawGraph(svg, model.get("graph"), model.get("selected"), choose);
      drawDetails(pane, model.get("details"));
    };
    model.on("change:graph change:details change:selected", update);
    update();
    return () => model.off("change:graph change:details change:selected", update);
  },
};
