// Browser side of cryolab.ui.form.ProtocolForm (an anywidget front-end module, no bundler).
//
// It draws the state that Python computes (fields, their visibility, input options, issues,
// enabled buttons, the launched run) and sends edits and clicks back as custom messages
// {action: "edit" | "run" | "schedule" | "refresh" | "copy"}. It decides nothing itself: no
// validation, no conditions, no parsing happen here.

function h(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function setOptions(select, options, selected, placeholder) {
  const wanted = JSON.stringify([options, selected]);
  if (select.dataset.options === wanted) return;
  select.dataset.options = wanted;
  select.replaceChildren();
  if (placeholder !== null) select.append(h("option", { value: "", text: placeholder }));
  for (const option of options) {
    const node = h("option", { value: option.ref, text: option.label });
    node.selected = selected.includes(option.ref);
    if (option.status && option.status !== "finished") node.className = "cl-pending";
    select.append(node);
  }
  if (placeholder !== null && selected.length === 0) select.value = "";
}

function makeEditor(field, send) {
  const edit = (value) => send({ action: "edit", name: field.name, value });
  let input;
  switch (field.editor) {
    case "checkbox":
      input = h("input", { type: "checkbox" });
      input.addEventListener("change", () => edit(input.checked));
      break;
    case "select":
      input = h("select");
      field.choices.forEach((text, index) => input.append(h("option", { value: index, text })));
      input.addEventListener("change", () => edit(input.selectedIndex));
      break;
    case "input":
      input = h("select", { class: "cl-input-picker" });
      input.addEventListener("change", () => edit(input.value));
      break;
    case "inputs":
      input = h("select", { class: "cl-input-picker", multiple: "" });
      input.addEventListener("change", () =>
        edit(Array.from(input.selectedOptions, (option) => option.value)),
      );
      break;
    case "textarea":
      input = h("textarea", { rows: 3 });
      input.addEventListener("change", () => edit(input.value));
      break;
    default:
      input = h("input", { type: "text" });
      if (field.editor === "number") input.setAttribute("inputmode", "decimal");
      input.addEventListener("change", () => edit(input.value));
  }
  input.classList.add("cl-editor");
  input.id = `cl-${Math.random().toString(36).slice(2)}-${field.name}`;
  return input;
}

function makeRow(field, send) {
  const input = makeEditor(field, send);
  const label = h("label", { class: "cl-label", for: input.id, title: field.help }, [
    field.label,
  ]);
  if (field.required) label.append(h("span", { class: "cl-required", text: " *" }));
  if (field.expert > 0) label.append(h("span", { class: "cl-expert-mark", text: " (expert)" }));
  const control = h("div", { class: "cl-control" }, [input]);
  if (field.unit) control.append(h("span", { class: "cl-unit", text: field.unit }));
  const issue = h("div", { class: "cl-issue" });
  const row = h("div", { class: "cl-field", "data-name": field.name }, [label, control]);
  if (field.help) row.append(h("div", { class: "cl-help", text: field.help }));
  row.append(issue);
  return { row, input, issue };
}

function updateRow(parts, field, locked) {
  const { row, input, issue } = parts;
  row.hidden = !field.shown;
  input.disabled = locked;
  issue.textContent = field.issue;
  row.classList.toggle("cl-invalid", Boolean(field.issue));
  const editing = document.activeElement === input;
  switch (field.editor) {
    case "checkbox":
      input.checked = field.checked;
      break;
    case "select":
      if (!editing) input.selectedIndex = field.index;
      break;
    case "input":
      setOptions(input, field.options, field.selected, "— pick an output —");
      break;
    case "inputs":
      setOptions(input, field.options, field.selected, null);
      input.size = Math.min(Math.max(field.options.length, 2), 8);
      break;
    default:
      if (!editing && input.value !== field.text) input.value = field.text;
  }
}

function renderRun(panel, state) {
  panel.hidden = !state.id;
  if (!state.id) return;
  const title = h("div", { class: "cl-run-title" }, [
    h("b", { text: `Run ${state.id}` }),
    ` ${state.protocol}${state.label ? " · " + state.label : ""} `,
    h("span", { class: `cl-status cl-status-${state.status}`, text: state.status }),
  ]);
  const progress = h("div", { class: "cl-progress" });
  if (state.total > 0) {
    progress.append(
      h("progress", { max: state.total, value: state.done }),
      ` ${state.done} / ${state.total} steps`,
    );
  } else {
    progress.append(state.ended ? "no steps" : "not planned yet");
  }
  const outputs = h(
    "ul",
    { class: "cl-outputs" },
    state.outputs.map((o) => h("li", { text: `${o.ref} · ${o.type} · ${o.count} items (${o.state})` })),
  );
  const children = [title, progress, outputs];
  if (state.error) children.push(h("div", { class: "cl-error", text: state.error }));
  const logView = h("pre", { class: "cl-log", text: state.log || "(no log yet)" });
  children.push(logView);
  panel.querySelector(".cl-run-body").replaceChildren(...children);
  logView.scrollTop = logView.scrollHeight;
}

export default {
  render({ model, el }) {
    const send = (content) => model.send(content);
    const spec = model.get("spec");
    const root = h("div", { class: "cryolab-form" });

    const help = h("details", { class: "cl-help-block" }, [
      h("summary", { text: spec.summary || spec.name }),
      h("pre", { text: spec.help }),
    ]);
    const header = h("div", { class: "cl-header" }, [
      h("div", { class: "cl-title" }, [h("b", { text: spec.label }), h("code", { text: spec.name })]),
      help,
      h("div", { class: "cl-project", text: spec.project }),
    ]);

    const expert = h("input", { type: "checkbox" });
    expert.addEventListener("change", () => {
      model.set("expert", expert.checked);
      model.save_changes();
    });
    const runLabel = h("input", { type: "text", placeholder: "run label", class: "cl-run-label" });
    runLabel.addEventListener("change", () => {
      model.set("run_label", runLabel.value);
      model.save_changes();
    });
    const refresh = h("button", { type: "button", title: "list the project's outputs again" }, [
      "↻ Refresh",
    ]);
    refresh.addEventListener("click", () => send({ action: "refresh" }));
    const toolbar = h("div", { class: "cl-toolbar" }, [
      h("label", {}, [expert, " Expert parameters"]),
      runLabel,
      refresh,
    ]);

    const body = h("div", { class: "cl-body" });
    const sections = new Map();
    for (const name of spec.sections) {
      const fieldset = h("fieldset", { class: "cl-section" }, [h("legend", { text: name })]);
      sections.set(name, fieldset);
      body.append(fieldset);
    }
    const rows = new Map();

    const issues = h("ul", { class: "cl-issues" });
    const runButton = h("button", { type: "button", class: "cl-run" }, ["Run"]);
    const scheduleButton = h("button", { type: "button", class: "cl-schedule" }, ["Schedule"]);
    runButton.addEventListener("click", () => send({ action: "run" }));
    scheduleButton.addEventListener("click", () => send({ action: "schedule" }));
    const reason = h("span", { class: "cl-reason" });
    const buttons = h("div", { class: "cl-actions" }, [runButton, scheduleButton, reason]);
    const message = h("div", { class: "cl-message" });

    const copyButton = h("button", { type: "button" }, ["Edit a copy"]);
    copyButton.addEventListener("click", () => send({ action: "copy" }));
    const runPanel = h("div", { class: "cl-run-panel" }, [
      h("div", { class: "cl-run-body" }),
      copyButton,
    ]);

    root.append(header, toolbar, body, issues, buttons, message, runPanel);
    el.append(root);

    function update() {
      const state = model.get("run_state");
      const locked = Boolean(state.id);
      for (const field of model.get("fields")) {
        if (!rows.has(field.name)) {
          const parts = makeRow(field, send);
          rows.set(field.name, parts);
          sections.get(field.section).append(parts.row);
        }
        updateRow(rows.get(field.name), field, locked);
      }
      for (const [name, fieldset] of sections) {
        const visible = model.get("fields").some((f) => f.section === name && f.shown);
        fieldset.hidden = !visible;
      }
      expert.checked = model.get("expert");
      if (document.activeElement !== runLabel) runLabel.value = model.get("run_label");
      runLabel.disabled = locked;
      issues.replaceChildren(
        ...model.get("issues").map((i) =>
          h("li", { class: `cl-${i.severity}`, text: i.label ? `${i.label}: ${i.message}` : i.message }),
        ),
      );
      const actions = model.get("actions");
      runButton.disabled = locked || !actions.run.enabled;
      runButton.title = actions.run.reason;
      scheduleButton.disabled = locked || !actions.schedule.enabled;
      scheduleButton.title = actions.schedule.reason;
      reason.textContent = locked || actions.run.enabled ? "" : actions.run.reason;
      buttons.hidden = locked;
      message.textContent = model.get("message");
      renderRun(runPanel, state);
    }

    const events = [
      "change:fields",
      "change:issues",
      "change:actions",
      "change:expert",
      "change:run_label",
      "change:message",
      "change:run_state",
    ];
    for (const event of events) model.on(event, update);
    update();
    return () => {
      for (const event of events) model.off(event, update);
    };
  },
};
