// cryolab lazy gallery: an anywidget front-end module (plain ES module, no bundler, no CDN).
//
// Only the visible tiles exist in the DOM. Thumbnails come in pages of PAGE items from the
// Python side (command "_page", one binary buffer of n * size * size grey bytes); the order,
// the filter and the selection live in Python, so this file only lays tiles out, draws them
// and forwards clicks.

const PAGE = 100; // items per page request
const KEEP_PAGES = 40; // pages kept in memory (the visible ones are never dropped)
const OVERSCAN = 2; // rows drawn above and below the visible ones
const TIMEOUT_MS = 30000; // a busy kernel answers comm messages only between cells
const FRAME = 8; // a tile's padding and border, both sides (gallery.css)
const MARGIN = 2; // a tile's margin (gallery.css)
const LINE = 14; // a label's line height (gallery.css)

function invoke(experimental, name, msg) {
  return experimental.invoke(name, msg, { signal: AbortSignal.timeout(TIMEOUT_MS) });
}

function formatValue(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number" && !Number.isInteger(value)) return value.toPrecision(4);
  return String(value);
}

function element(tag, className, parent) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (parent) parent.appendChild(node);
  return node;
}

function drawGrey(canvas, pixels, size) {
  canvas.width = size;
  canvas.height = size;
  const context = canvas.getContext("2d");
  if (!context) return;
  const image = context.createImageData(size, size);
  for (let i = 0; i < size * size; i++) {
    const v = pixels[i];
    image.data[4 * i] = v;
    image.data[4 * i + 1] = v;
    image.data[4 * i + 2] = v;
    image.data[4 * i + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

function fillOptions(select, names, chosen, withNone) {
  select.replaceChildren();
  if (withNone) {
    const none = element("option", "", select);
    none.value = "";
    none.textContent = "(set order)";
  }
  for (const name of names) {
    const option = element("option", "", select);
    option.value = name;
    option.textContent = name;
    option.selected = chosen.includes(name);
  }
}

function render({ model, el, experimental }) {
  const root = element("div", "cryolab-gallery", el);
  const bar = element("div", "cg-bar", root);
  const title = element("span", "cg-title", bar);
  const sortLabel = element("label", "", bar);
  sortLabel.textContent = "sort ";
  const sort = element("select", "cg-sort", sortLabel);
  const descLabel = element("label", "", bar);
  const desc = element("input", "cg-desc", descLabel);
  desc.type = "checkbox";
  descLabel.append(" descending");
  const where = element("input", "cg-where", bar);
  where.placeholder = "filter, e.g. ctf.defocus_u > 2e4 (Enter)";
  const labelsLabel = element("label", "", bar);
  labelsLabel.textContent = "labels ";
  const labels = element("select", "cg-labels", labelsLabel);
  labels.multiple = true;
  labels.size = 3;
  const selectAll = element("button", "cg-all", bar);
  selectAll.textContent = "Select all";
  const clear = element("button", "cg-none", bar);
  clear.textContent = "Clear";
  const subset = element("button", "cg-subset", bar);
  subset.textContent = "Make subset";
  const status = element("div", "cg-status", root);
  const error = element("div", "cg-error", root);
  const scroller = element("div", "cg-scroll", root);
  const spacer = element("div", "cg-spacer", scroller);

  const pages = new Map(); // page number -> {version, uids, labels, selected, pixels, size}
  const pending = new Set();
  const tiles = new Map(); // position -> tile element
  let anchor = null;
  let note = "";
  let frame = 0;
  let alive = true;
  let shown = { first: 0, stop: 0 };

  function geometry() {
    const size = model.get("size");
    const lines = model.get("labels").length;
    // a tile's slot: the canvas (size), the tile's padding and border (FRAME) and its margin
    // (MARGIN), as in gallery.css (box-sizing: border-box), and a line (LINE) per label
    const width = size + FRAME + 2 * MARGIN;
    const height = size + FRAME + 2 * MARGIN + LINE * lines;
    const columns = Math.max(1, Math.floor(scroller.clientWidth / width));
    return { size, width, height, columns };
  }

  function showStatus() {
    const run = model.get("subset_run");
    const parts = [
      `${model.get("total").toLocaleString()} items`,
      `${model.get("n_selected").toLocaleString()} selected`,
    ];
    if (run) parts.push(`subset run ${run} created`);
    if (note) parts.push(note);
    status.textContent = parts.join(" · ");
    title.textContent = model.get("title");
    error.textContent = model.get("error");
    subset.disabled = !model.get("can_subset") || model.get("n_selected") === 0;
  }

  function fillTile(tile, page, offset, size) {
    const canvas = tile.firstChild;
    drawGrey(canvas, page.pixels.subarray(offset * size * size, (offset + 1) * size * size), size);
    const entries = Object.entries(page.labels);
    tile.lastChild.replaceChildren(
      ...entries.map(([, v]) => {
        const line = element("div", "cg-line");
        line.textContent = formatValue(v[offset]);
        return line;
      }),
    );
    tile.title = entries.map(([name, v]) => `${name}: ${formatValue(v[offset])}`).join("\n");
    tile.classList.toggle("cg-selected", page.selected[offset]);
    tile.classList.remove("cg-loading");
  }

  function newTile(position, g) {
    const tile = element("div", "cg-tile cg-loading", spacer);
    const canvas = element("canvas", "", tile);
    canvas.width = g.size;
    canvas.height = g.size;
    element("div", "cg-label", tile);
    const row = Math.floor(position / g.columns);
    tile.style.left = `${(position % g.columns) * g.width}px`;
    tile.style.top = `${row * g.height}px`;
    tile.style.width = `${g.width - 2 * MARGIN}px`;
    tile.dataset.position = String(position);
    return tile;
  }

  // Pages come from the Jupyter server (cryolab.server.thumbnails) when it serves this
  // output, so they load while the kernel is busy; otherwise, or if the server says no, over
  // the widget's comm. Selection flags always come from the kernel (refreshFlags).
  let useServer = Boolean(model.get("server_page"));

  async function fromServer(number) {
    const config = JSON.parse(document.getElementById("jupyter-config-data")?.textContent || "{}");
    const base = config.baseUrl || "/";
    const query = new URLSearchParams({
      start: String(number * PAGE), count: String(PAGE), size: String(model.get("size")),
      sort: model.get("sort"), descending: model.get("descending") ? "1" : "0",
      where: model.get("where"), labels: model.get("labels").join(","),
    });
    const headers = config.token ? { Authorization: `token ${config.token}` } : {};
    const response = await fetch(`${base}${model.get("server_page")}?${query}`, {
      headers, credentials: "same-origin", signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    if (!response.ok) throw new Error(`server answered ${response.status}`);
    const meta = await response.json();
    const raw = atob(meta.thumbnails);
    const pixels = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) pixels[i] = raw.charCodeAt(i);
    return { ...meta, pixels, selected: new Array(meta.count).fill(false), served: true };
  }

  async function fromKernel(number) {
    const [meta, buffers] = await invoke(experimental, "_page", { start: number * PAGE, count: PAGE });
    if (meta.error) return meta;
    const view = buffers[0];
    return { ...meta, pixels: new Uint8Array(view.buffer, view.byteOffset, view.byteLength) };
  }

  async function request(number) {
    if (pending.has(number)) return;
    pending.add(number);
    const version = model.get("version");
    try {
      let page = null;
      if (useServer) {
        try {
          page = { ...(await fromServer(number)), version };
        } catch (failure) {
          useServer = false; // not served here (no extension, or not registered): the comm
        }
      }
      if (page === null) page = await fromKernel(number);
      if (!alive) return;
      if (page.error) {
        note = page.error;
      } else if (page.version === model.get("version") && page.size === model.get("size")) {
        pages.set(number, page);
        if (page.errors.length) note = `${page.errors.length} image(s) unreadable`;
        schedule();
        if (page.served) refreshFlags();
      }
    } catch (failure) {
      note = `page ${number + 1} failed: ${failure}`;
    } finally {
      pending.delete(number);
      if (version !== model.get("version")) schedule();
      showStatus();
    }
  }

  function layout() {
    frame = 0;
    const g = geometry();
    const total = model.get("total");
    spacer.style.height = `${Math.ceil(total / g.columns) * g.height}px`;
    const firstRow = Math.max(0, Math.floor(scroller.scrollTop / g.height) - OVERSCAN);
    const lastRow = Math.ceil((scroller.scrollTop + scroller.clientHeight) / g.height) + OVERSCAN;
    const first = firstRow * g.columns;
    const stop = Math.min(total, lastRow * g.columns);
    shown = { first, stop };
    for (const [position, tile] of tiles) {
      const moved =
        tile.style.top !== `${Math.floor(position / g.columns) * g.height}px` ||
        tile.style.left !== `${(position % g.columns) * g.width}px`;
      if (position < first || position >= stop || moved) {
        tile.remove();
        tiles.delete(position);
      }
    }
    const wanted = new Set();
    for (let position = first; position < stop; position++) {
      const number = Math.floor(position / PAGE);
      wanted.add(number);
      let tile = tiles.get(position);
      if (!tile) {
        tile = newTile(position, g);
        tiles.set(position, tile);
      }
      const page = pages.get(number);
      if (page && tile.classList.contains("cg-loading")) {
        fillTile(tile, page, position - number * PAGE, g.size);
      }
    }
    for (const number of wanted) if (!pages.has(number)) request(number);
    if (pages.size > KEEP_PAGES) {
      for (const number of pages.keys()) {
        if (pages.size <= KEEP_PAGES) break;
        if (!wanted.has(number)) pages.delete(number);
      }
    }
    showStatus();
  }

  function schedule() {
    if (!frame && alive) frame = requestAnimationFrame(layout);
  }

  function reset() {
    pages.clear();
    for (const tile of tiles.values()) tile.remove();
    tiles.clear();
    anchor = null;
    schedule();
  }

  async function refreshFlags() {
    const { first, stop } = shown;
    if (stop <= first) return;
    const [meta] = await invoke(experimental, "_flags_at", { start: first, stop });
    if (!alive || meta.error || meta.version !== model.get("version")) return;
    meta.selected.forEach((flag, i) => {
      const position = first + i;
      const page = pages.get(Math.floor(position / PAGE));
      if (page) page.selected[position % PAGE] = flag;
      const tile = tiles.get(position);
      if (tile) tile.classList.toggle("cg-selected", flag);
    });
  }

  async function select(msg) {
    const [meta] = await invoke(experimental, "_select", msg);
    note = meta.error || "";
    showStatus();
    await refreshFlags();
  }

  spacer.addEventListener("click", (event) => {
    const tile = event.target.closest(".cg-tile");
    if (!tile) return;
    const position = Number(tile.dataset.position);
    if (event.shiftKey && anchor !== null) {
      select({ action: "range", anchor, position });
    } else {
      select({ action: "toggle", position });
    }
    anchor = position;
  });
  selectAll.addEventListener("click", () => select({ action: "all" }));
  clear.addEventListener("click", () => select({ action: "none" }));
  subset.addEventListener("click", async () => {
    subset.disabled = true;
    const [meta] = await invoke(experimental, "_subset", {});
    note = meta.error || "";
    showStatus();
  });
  sort.addEventListener("change", () => {
    model.set("sort", sort.value);
    model.save_changes();
  });
  desc.addEventListener("change", () => {
    model.set("descending", desc.checked);
    model.save_changes();
  });
  where.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    model.set("where", where.value);
    model.save_changes();
  });
  labels.addEventListener("change", () => {
    model.set("labels", Array.from(labels.selectedOptions, (option) => option.value));
    model.save_changes();
  });
  scroller.addEventListener("scroll", schedule, { passive: true });
  const resize = new ResizeObserver(schedule);
  resize.observe(scroller);

  function syncControls() {
    fillOptions(sort, model.get("columns"), [model.get("sort")], true);
    fillOptions(labels, model.get("columns"), model.get("labels"), false);
    desc.checked = model.get("descending");
    where.value = model.get("where");
  }

  const handlers = {
    "change:version": reset,
    "change:size": reset,
    "change:labels": () => {
      syncControls();
      reset();
    },
    "change:columns change:sort change:descending change:where": syncControls,
    "change:total": schedule,
    "change:n_selected": () => {
      showStatus();
      refreshFlags();
    },
    "change:error change:subset_run change:can_subset change:title": showStatus,
  };
  for (const [event, handler] of Object.entries(handlers)) model.on(event, handler);
  syncControls();
  schedule();

  return () => {
    alive = false;
    if (frame) cancelAnimationFrame(frame);
    resize.disconnect();
    for (const [event, handler] of Object.entries(handlers)) model.off(event, handler);
  };
}

export default { render };
