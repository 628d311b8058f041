// Orthogonal slices / maximum-intensity projections of a map (cryolab.ui.volume.VolumeViewer).
// Python computes the uint8 planes; this module only draws them and sends clicks and scrolls.
const AXES = ["z", "y", "x"];
// the array axes (index into position/shape) shown as rows and columns of each view
const LAYOUT = { z: [1, 2], y: [0, 2], x: [0, 1] };

function bytesOf(value) {
  if (value instanceof DataView) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return new Uint8Array(value || []);
}

const DISPLAY = 256; // px of each view's canvas (the map's plane is scaled up, unsmoothed)

function draw(canvas, bytes, rows, cols, marker) {
  const scale = DISPLAY / Math.max(rows, cols);
  canvas.width = Math.round(cols * scale);
  canvas.height = Math.round(rows * scale);
  const plane = document.createElement("canvas");
  plane.width = cols;
  plane.height = rows;
  const image = plane.getContext("2d").createImageData(cols, rows);
  for (let i = 0; i < rows * cols && i < bytes.length; i++) {
    const v = bytes[i];
    image.data[4 * i] = v; image.data[4 * i + 1] = v; image.data[4 * i + 2] = v; image.data[4 * i + 3] = 255;
  }
  plane.getContext("2d").putImageData(image, 0, 0);
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.drawImage(plane, 0, 0, canvas.width, canvas.height);
  if (marker) {
    context.strokeStyle = "rgba(255, 80, 0, 0.7)";
    context.lineWidth = 1;
    const x = Math.round((marker[1] + 0.5) * scale) + 0.5;
    const y = Math.round((marker[0] + 0.5) * scale) + 0.5;
    context.beginPath();
    context.moveTo(x, 0); context.lineTo(x, canvas.height);
    context.moveTo(0, y); context.lineTo(canvas.width, y);
    context.stroke();
  }
}

export default {
  render({ model, el }) {
    el.classList.add("cryolab-volume");
    const bar = document.createElement("div");
    bar.className = "bar";
    const title = document.createElement("strong");
    const where = document.createElement("span");
    const mode = document.createElement("button");
    bar.append(title, where, mode);
    const views = document.createElement("div");
    views.className = "views";
    const canvases = {};
    for (const axis of AXES) {
      const figure = document.createElement("figure");
      const canvas = document.createElement("canvas");
      canvas.dataset.axis = axis;
      const caption = document.createElement("figcaption");
      caption.textContent = `⊥ ${axis}`;
      figure.append(canvas, caption);
      views.append(figure);
      canvases[axis] = canvas;
      canvas.addEventListener("click", (event) => {
        const [r, c] = LAYOUT[axis];
        const shape = model.get("shape");
        const box = canvas.getBoundingClientRect();
        const position = [...model.get("position")];
        position[r] = Math.floor(((event.clientY - box.top) / box.height) * shape[r]);
        position[c] = Math.floor(((event.clientX - box.left) / box.width) * shape[c]);
        model.set("position", position);
        model.save_changes();
      });
      canvas.addEventListener("wheel", (event) => {
        if (model.get("mode") !== "slices") return;
        event.preventDefault();
        const index = AXES.indexOf(axis);
        const position = [...model.get("position")];
        position[index] = Math.min(model.get("shape")[index] - 1, Math.max(0, position[index] + Math.sign(event.deltaY)));
        model.set("position", position);
        model.save_changes();
      });
    }
    mode.addEventListener("click", () => {
      model.set("mode", model.get("mode") === "slices" ? "mip" : "slices");
      model.save_changes();
    });
    el.append(bar, views);

    const update = () => {
      const shape = model.get("shape");
      const position = model.get("position");
      const slices = model.get("mode") === "slices";
      title.textContent = model.get("title");
      const size = model.get("pixel_size");
      where.textContent = slices
        ? `z ${position[0]}, y ${position[1]}, x ${position[2]} (${size.toFixed(2)} Å/px)`
        : "maximum-intensity projections";
      mode.textContent = slices ? "projections" : "slices";
      for (const axis of AXES) {
        const [r, c] = LAYOUT[axis];
        const marker = slices ? [position[r], position[c]] : null;
        draw(canvases[axis], bytesOf(model.get(`plane_${axis}`)), shape[r], shape[c], marker);
      }
    };
    const events = "change:plane_z change:plane_y change:plane_x change:position change:mode change:title";
    model.on(events, update);
    update();
    return () => model.off(events, update);
  },
};
