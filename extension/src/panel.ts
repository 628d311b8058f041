/**
 * The run-graph side panel: a project selector, the selected project's run graph (laid out
 * by ELK in a worker, recoloured live) and the details of the clicked run.
 */
import { Widget } from '@lumino/widgets';

import {
  abortRun,
  fetchEvents,
  fetchGraph,
  fetchRun,
  IProjectEntry,
  IRunGraph,
  listProjects
} from './api';
import { IDetailsActions, renderDetails } from './details';
import { draw, recolor } from './graph';
import { layout, topology } from './layout';

/** How often the project's events are polled while the panel is visible (ms). */
const POLL_MS = 1000;

/** How far a graph wider than the panel is shrunk before it scrolls instead. */
const MIN_SCALE = 0.7;

/** What the panel asks of the notebook side: run Python for a run of a project. */
export interface INotebookBridge {
  copy(path: string, run: number): Promise<void>;
  gallery(path: string, run: number, output: string): Promise<void>;
}

export class RunGraphPanel extends Widget {
  constructor(private readonly bridge: INotebookBridge) {
    super();
    this.addClass('cryolab-RunGraphPanel');
    const bar = this.add('div', 'cryolab-toolbar');
    this.selector = document.createElement('select');
    this.selector.className = 'cryolab-project-select';
    this.selector.title = 'cryolab project';
    this.selector.addEventListener('change', () =>
      this.selectProject(this.selector.value)
    );
    bar.appendChild(this.selector);
    const refresh = document.createElement('button');
    refresh.className = 'jp-Button cryolab-refresh';
    refresh.textContent = '⟳';
    refresh.title = 'Reload the project list';
    refresh.addEventListener('click', () => void this.loadProjects());
    bar.appendChild(refresh);
    this.message = this.add('div', 'cryolab-message');
    this.scroller = this.add('div', 'cryolab-graph');
    this.svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    this.scroller.appendChild(this.svg);
    this.details = this.add('div', 'cryolab-details');
    this.actions = {
      copy: run => this.act(() => this.bridge.copy(this.path(), run)),
      abort: run => this.act(() => this.abort(run)),
      gallery: (run, output) =>
        this.act(() => this.bridge.gallery(this.path(), run, output))
    };
  }

  /** Reload the list of served projects and show the first one if none was shown. */
  async loadProjects(): Promise<void> {
    try {
      this.projects = await listProjects();
    } catch (error) {
      this.say(`Cannot list the projects: ${error}`);
      return;
    }
    this.selector.replaceChildren(
      ...this.projects.map(p => {
        const option = document.createElement('option');
        option.value = p.id;
        option.textContent = `${p.name} (${p.runs ?? '?'} runs)`;
        option.title = p.path;
        return option;
      })
    );
    if (this.projects.length === 0) {
      this.say(
        'No registered projects: add project folders to CRYOLAB_PROJECTS, the ' +
          "'projects' of the cryolab configuration or c.CryolabServer.projects."
      );
      return;
    }
    const keep = this.projects.some(p => p.id === this.project);
    this.selector.value = keep ? this.project : this.projects[0].id;
    if (!keep) {
      this.selectProject(this.selector.value);
    }
  }

  protected onAfterShow(): void {
    void this.loadProjects();
    this.timer = window.setInterval(() => void this.poll(), POLL_MS);
  }

  protected onResize(): void {
    this.fitGraph();
  }

  protected onAfterHide(): void {
    window.clearInterval(this.timer);
  }

  dispose(): void {
    window.clearInterval(this.timer);
    super.dispose();
  }

  private add(tag: string, className: string): HTMLElement {
    const made = document.createElement(tag);
    made.className = className;
    this.node.appendChild(made);
    return made;
  }

  private say(text: string): void {
    this.message.textContent = text;
  }

  private path(): string {
    return this.projects.find(p => p.id === this.project)?.path ?? '';
  }

  private selectProject(id: string): void {
    this.project = id;
    this.since = 0;
    this.shape = '';
    this.selected = null;
    this.details.replaceChildren();
    this.svg.replaceChildren();
    void this.refresh();
  }

  /** Fetch the project's events; on news, fetch the graph and the selected run again. */
  private async poll(): Promise<void> {
    if (!this.project || this.polling) {
      return;
    }
    this.polling = true;
    const project = this.project;
    try {
      const batch = await fetchEvents(project, this.since);
      if (project === this.project && batch.last !== this.since) {
        this.since = batch.last;
        await this.refresh();
      }
    } catch (error) {
      this.say(`Cannot read the events: ${error}`);
    } finally {
      this.polling = false;
    }
  }

  /** Fetch the graph; lay it out again only when its topology changed. */
  private async refresh(): Promise<void> {
    const project = this.project;
    let graph: IRunGraph;
    try {
      graph = await fetchGraph(project);
    } catch (error) {
      this.say(`Cannot read the run graph: ${error}`);
      return;
    }
    if (project !== this.project) {
      return;
    }
    this.say(graph.nodes.length === 0 ? 'This project has no runs yet.' : '');
    const shape = topology(graph);
    if (shape !== this.shape) {
      const placed = await layout(graph);
      if (project !== this.project) {
        return;
      }
      this.shape = shape;
      this.size = placed;
      draw(this.svg, placed, graph.nodes, run => void this.showRun(run));
      this.fitGraph();
    }
    recolor(this.svg, graph.nodes, this.selected);
    if (this.selected !== null) {
      await this.showRun(this.selected);
    }
  }

  /** Shrink the drawing to the panel's width, down to MIN_SCALE (then it scrolls). */
  private fitGraph(): void {
    const { width, height } = this.size;
    const room = this.scroller.clientWidth;
    const scale =
      width > 0 && room > 0 ? Math.max(MIN_SCALE, Math.min(1, room / width)) : 1;
    this.svg.setAttribute('width', String(width * scale));
    this.svg.setAttribute('height', String(height * scale));
  }

  private async showRun(run: number): Promise<void> {
    const project = this.project;
    this.selected = run;
    try {
      const details = await fetchRun(project, run);
      if (project === this.project && run === this.selected) {
        renderDetails(this.details, details, this.actions);
      }
    } catch (error) {
      this.say(`Cannot read run ${run}: ${error}`);
    }
    this.svg
      .querySelectorAll('g[data-run]')
      .forEach(g =>
        g.classList.toggle(
          'cryolab-selected',
          g.getAttribute('data-run') === String(run)
        )
      );
  }

  private async abort(run: number): Promise<void> {
    const details = await abortRun(this.project, run);
    renderDetails(this.details, details, this.actions);
  }

  private act(action: () => Promise<void>): void {
    action().catch(error => this.say(String(error)));
  }

  private readonly selector: HTMLSelectElement;
  private readonly message: HTMLElement;
  private readonly scroller: HTMLElement;
  private readonly svg: SVGSVGElement;
  private readonly details: HTMLElement;
  private readonly actions: IDetailsActions;
  private projects: IProjectEntry[] = [];
  private project = '';
  private since = 0;
  private shape = '';
  private size = { width: 0, height: 0 };
  private selected: number | null = null;
  private polling = false;
  private timer = 0;
}
