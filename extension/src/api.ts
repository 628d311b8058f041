/**
 * The cryolab REST API served by the `cryolab.server` Jupyter server extension under
 * `<base_url>/cryolab/api/`, and the JSON shapes it answers with.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** One served project, as listed by `GET /projects`. */
export interface IProjectEntry {
  id: string;
  name: string;
  path: string;
  runs?: number;
  status?: Record<string, number>;
  error?: string;
}

/** An output summary of a node of the run graph. */
export interface IOutputSummary {
  name: string;
  type: string;
  count: number | null;
  state: string;
}

/** A run in the run graph. */
export interface IGraphNode {
  id: number;
  protocol: string;
  label: string;
  status: string;
  comment: string;
  outputs: IOutputSummary[];
}

/** An output of run `source` read by parameter `param` of run `target`. */
export interface IGraphEdge {
  source: number;
  output: string;
  target: number;
  param: string;
}

/** `GET /projects/<id>/graph`. */
export interface IRunGraph {
  id: string;
  project: string;
  nodes: IGraphNode[];
  edges: IGraphEdge[];
}

/** `GET /projects/<id>/events?since=N`: events after id N; `last` is the next `since`. */
export interface IEventBatch {
  id: string;
  events: { id: number; run: number | null; kind: string }[];
  last: number;
}

/** An output of a run, described. */
export interface IOutputInfo {
  ref: string;
  type: string;
  count: number | null;
  state: string;
}

/** An input of a run: an output of another run, read by one of its parameters. */
export interface IInputInfo extends Partial<IOutputInfo> {
  param: string;
  run: number;
  output: string;
  ref: string;
  count: number | null;
}

/** `GET /projects/<id>/runs/<run_id>`: everything the details view shows. */
export interface IRunDetails {
  id: number;
  protocol: string;
  label: string;
  comment: string;
  status: string;
  error: string | null;
  params: Record<string, unknown>;
  inputs: IInputInfo[];
  outputs: Record<string, IOutputInfo>;
  steps: Record<string, number>;
  summary: string | null;
  log: string | null;
  provenance?: IProvenance;
  notebook?: INotebookLink | null;
}

/** The notebook a run was created from (`origin.notebook`; absent for runs made elsewhere). */
export interface INotebookLink {
  path: string;
  abs_path?: string | null;
  cell_id?: string | null;
  cell_index?: number | null;
  execution_count?: number | null;
}

/** What a run recorded about how it ran (`provenance.json`; empty before it started). */
export interface IProvenance {
  versions?: Record<string, unknown>;
  host?: string;
  gpu?: string | null;
  seed?: number | null;
  started?: number | null;
  finished?: number | null;
  peak_memory?: Record<string, number | null> | number | null;
  inputs?: { param: string; ref: string; rows?: number; digest?: string }[] | null;
}

async function request<T>(
  path: string[],
  query = '',
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url =
    URLExt.join(
      settings.baseUrl,
      'cryolab',
      'api',
      ...path.map(encodeURIComponent)
    ) + query;
  const response = await ServerConnection.makeRequest(url, init, settings);
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    throw new ServerConnection.ResponseError(
      response,
      data?.message ?? response.statusText
    );
  }
  return data as T;
}

/** The served projects. */
export async function listProjects(): Promise<IProjectEntry[]> {
  return (await request<{ projects: IProjectEntry[] }>(['projects'])).projects;
}

/** The run graph of project `project`. */
export function fetchGraph(project: string): Promise<IRunGraph> {
  return request<IRunGraph>(['projects', project, 'graph']);
}

/** The events of project `project` after event id `since`. */
export function fetchEvents(
  project: string,
  since: number
): Promise<IEventBatch> {
  return request<IEventBatch>(
    ['projects', project, 'events'],
    `?since=${since}`
  );
}

/** The details of run `run` of project `project`, with the end of its log. */
export function fetchRun(project: string, run: number): Promise<IRunDetails> {
  return request<IRunDetails>(['projects', project, 'runs', String(run)]);
}

/** Stop run `run` of project `project`; its details afterwards. */
export function abortRun(project: string, run: number): Promise<IRunDetails> {
  return request<IRunDetails>(
    ['projects', project, 'runs', String(run), 'abort'],
    '',
    { method: 'POST' }
  );
}
