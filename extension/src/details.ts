/**
 * The details view of one run: status, parameters, inputs and outputs with their counts,
 * summary and the end of the log, with the copy, abort and gallery actions.
 */
import { INotebookLink, IProvenance, IRunDetails } from './api';

/** What the buttons of the details view do. */
export interface IDetailsActions {
  copy(run: number): void;
  abort(run: number): void;
  gallery(run: number, output: string): void;
}

const ACTIVE = ['saved', 'launched', 'scheduled', 'running'];

function add<K extends keyof HTMLElementTagNameMap>(
  parent: HTMLElement,
  tag: K,
  text?: string,
  className?: string
): HTMLElementTagNameMap[K] {
  const made = document.createElement(tag);
  if (text !== undefined) {
    made.textContent = text;
  }
  if (className !== undefined) {
    made.className = className;
  }
  parent.appendChild(made);
  return made;
}

function button(
  parent: HTMLElement,
  label: string,
  action: string,
  onClick: () => void
): HTMLButtonElement {
  const made = add(parent, 'button', label, 'jp-Button cryolab-action');
  made.dataset.action = action;
  made.addEventListener('click', onClick);
  return made;
}

function count(value: number | null | undefined): string {
  return value === null || value === undefined ? '?' : String(value);
}

function section(parent: HTMLElement, title: string): HTMLElement {
  add(parent, 'h3', title);
  return add(parent, 'div', undefined, 'cryolab-section');
}

/** Render `run` into `host`, replacing what was there. */
export function renderDetails(
  host: HTMLElement,
  run: IRunDetails,
  actions: IDetailsActions
): void {
  host.replaceChildren();
  host.dataset.run = String(run.id);
  host.dataset.status = run.status;
  const header = add(host, 'div', undefined, 'cryolab-details-header');
  add(header, 'h2', `Run ${run.id}: ${run.label || run.protocol}`);
  add(header, 'span', run.status, 'cryolab-status').dataset.status =
    run.status;
  add(host, 'div', run.protocol, 'cryolab-protocol');
  if (run.notebook) {
    add(host, 'div', `From ${notebookPlace(run.notebook)}`, 'cryolab-notebook');
  }
  if (run.error) {
    add(host, 'div', run.error, 'cryolab-error');
  }
  const bar = add(host, 'div', undefined, 'cryolab-actions');
  button(bar, 'Copy…', 'copy', () => actions.copy(run.id));
  const abort = button(bar, 'Abort', 'abort', () => actions.abort(run.id));
  abort.disabled = !ACTIVE.includes(run.status);

  const params = add(section(host, 'Parameters'), 'table');
  for (const [name, value] of Object.entries(run.params)) {
    const row = add(params, 'tr');
    add(row, 'th', name);
    add(row, 'td', JSON.stringify(value));
  }

  const inputs = add(section(host, `Inputs (${run.inputs.length})`), 'ul');
  for (const input of run.inputs) {
    add(inputs, 'li', `${input.param} ← ${input.ref} (${count(input.count)})`);
  }

  const names = Object.keys(run.outputs);
  const outputs = add(section(host, `Outputs (${names.length})`), 'ul');
  for (const name of names) {
    const output = run.outputs[name];
    const item = add(outputs, 'li');
    item.dataset.output = name;
    add(item, 'span', `${name}: ${output.type}, ${count(output.count)} items`);
    button(item, 'Gallery', 'gallery', () => actions.gallery(run.id, name));
  }

  if (run.summary) {
    add(section(host, 'Summary'), 'pre', run.summary);
  }
  if (run.provenance && Object.keys(run.provenance).length > 0) {
    renderProvenance(section(host, 'Provenance'), run.provenance);
  }
  add(section(host, 'Log'), 'pre', run.log ?? '', 'cryolab-log');
}

/** Where in a notebook a run was created: the path and the cell, as far as it is known. */
function notebookPlace(link: INotebookLink): string {
  const cell =
    link.cell_index !== null && link.cell_index !== undefined
      ? `cell ${link.cell_index + 1}`
      : link.execution_count
        ? `execution [${link.execution_count}]`
        : '';
  return cell ? `${link.path}, ${cell}` : link.path;
}

function when(seconds: number | null | undefined): string {
  return seconds ? new Date(seconds * 1000).toLocaleString() : '—';
}

function bytes(value: unknown): string {
  return typeof value === 'number' ? `${(value / 2 ** 20).toFixed(0)} MiB` : '—';
}

/** The versions, machine, times and memory a run recorded, as a small table. */
function renderProvenance(parent: HTMLElement, record: IProvenance): void {
  const table = add(parent, 'table', undefined, 'cryolab-provenance');
  const row = (name: string, value: string): void => {
    const line = add(table, 'tr');
    add(line, 'th', name);
    add(line, 'td', value);
  };
  for (const [name, value] of Object.entries(record.versions ?? {})) {
    if (value !== null && typeof value !== 'object') {
      row(name, String(value));
    }
  }
  row('host', record.host ?? '—');
  row('GPU', record.gpu ?? 'none');
  row('seed', record.seed === null || record.seed === undefined ? '—' : String(record.seed));
  row('started', when(record.started));
  row('finished', when(record.finished));
  const memory = record.peak_memory;
  row(
    'peak memory',
    memory !== null && typeof memory === 'object'
      ? Object.entries(memory)
          .map(([part, value]) => `${part} ${bytes(value)}`)
          .join(', ')
      : bytes(memory)
  );
  for (const input of record.inputs ?? []) {
    row(`input ${input.param}`, `${input.ref}: ${input.digest ?? '?'}`);
  }
}
