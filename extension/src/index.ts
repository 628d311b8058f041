/**
 * The cryolab JupyterLab extension: a left side panel with the live run graph of the
 * registered cryolab projects, opened by its icon or the command "cryolab: Open Run Graph".
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';

import { outputExpression, runExpression, runInNotebook } from './notebook';
import { RunGraphPanel } from './panel';

const COMMAND = 'cryolab:open-run-graph';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16">
<g class="jp-icon3" fill="#616161"><rect x="5.5" y="1" width="5" height="4" rx="1"/>
<rect x="1" y="11" width="5" height="4" rx="1"/><rect x="10" y="11" width="5" height="4" rx="1"/>
<path d="M7.5 5h1v3h4.5v3h-1V9H4v2H3V8h4.5z"/></g></svg>`;

const runGraphIcon = new LabIcon({ name: 'cryolab:run-graph', svgstr: ICON_SVG });

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'cryolab:run-graph',
  description: 'The live run graph of cryolab projects in a side panel.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const panel = new RunGraphPanel({
      copy: (path, run) =>
        runInNotebook(
          app,
          tracker,
          `import cryolab; ${runExpression(path, run)}.form()`
        ),
      gallery: (path, run, output) =>
        runInNotebook(
          app,
          tracker,
          `import cryolab; ${outputExpression(runExpression(path, run), output)}.gallery()`
        )
    });
    panel.id = 'cryolab-run-graph';
    panel.title.icon = runGraphIcon;
    panel.title.caption = 'cryolab run graph';
    app.shell.add(panel, 'left', { rank: 700 });
    restorer?.add(panel, panel.id);

    app.commands.addCommand(COMMAND, {
      label: 'cryolab: Open Run Graph',
      icon: runGraphIcon,
      execute: () => app.shell.activateById(panel.id)
    });
    palette?.addItem({ command: COMMAND, category: 'cryolab' });
  }
};

export default plugin;
