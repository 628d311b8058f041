/**
 * Run a line of Python in the active notebook (or in a new one when none is open): the
 * copy and gallery actions of the details view open a form or a gallery this way.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import {
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';

/** `name` as a Python string literal (JSON strings are valid Python strings). */
export function pyString(name: string): string {
  return JSON.stringify(name);
}

/** The Python that gets run `run` of the project at `path`. */
export function runExpression(path: string, run: number): string {
  return `cryolab.open_project(${pyString(path)}).get_run(${run})`;
}

/** The Python of output `name` of a run expression. */
export function outputExpression(run: string, name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name)
    ? `${run}.out.${name}`
    : `${run}.out[${pyString(name)}]`;
}

async function targetNotebook(
  app: JupyterFrontEnd,
  tracker: INotebookTracker
): Promise<NotebookPanel> {
  const current = tracker.currentWidget;
  if (current !== null) {
    return current;
  }
  await app.serviceManager.kernelspecs.ready;
  const kernelName = app.serviceManager.kernelspecs.specs?.default;
  return (await app.commands.execute('notebook:create-new', {
    kernelName
  })) as NotebookPanel;
}

/** Insert a code cell with `code` below the active cell and execute it. */
export async function runInNotebook(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  code: string
): Promise<void> {
  const panel = await targetNotebook(app, tracker);
  await panel.context.ready;
  await panel.sessionContext.ready;
  app.shell.activateById(panel.id);
  const notebook = panel.content;
  const active = notebook.activeCell;
  const reuse =
    active !== null &&
    active.model.type === 'code' &&
    active.model.sharedModel.getSource() === '' &&
    notebook.widgets.length === 1;
  if (!reuse) {
    notebook.activeCellIndex = notebook.widgets.length - 1;
    NotebookActions.insertBelow(notebook);
    NotebookActions.changeCellType(notebook, 'code');
  }
  notebook.activeCell?.model.sharedModel.setSource(code);
  await NotebookActions.run(notebook, panel.sessionContext);
}
