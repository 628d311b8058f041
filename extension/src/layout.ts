/**
 * ELK's layered layout (direction down) of a run graph, computed in a Web Worker:
 * `elk-api.js` stays on the main thread and `elk-worker.min.js` is bundled as a worker
 * chunk, started the first time a layout is needed.
 */
import ElkConstructor, { ELK, ElkNode } from 'elkjs/lib/elk-api.js';

import { IRunGraph } from './api';

export const NODE_WIDTH = 150;
export const NODE_HEIGHT = 54;

/** A laid-out run: its id and top-left corner. */
export interface IPlacedNode {
  id: number;
  x: number;
  y: number;
}

/** A laid-out edge: the points of its orthogonal route. */
export interface IPlacedEdge {
  source: number;
  target: number;
  points: { x: number; y: number }[];
}

/** A run graph laid out: where nodes and edges go and the size of the drawing. */
export interface ILayout {
  nodes: IPlacedNode[];
  edges: IPlacedEdge[];
  width: number;
  height: number;
}

let elk: ELK | null = null;

function engine(): ELK {
  if (elk === null) {
    // rspack bundles the worker script as a worker chunk of its own
    elk = new ElkConstructor({
      workerFactory: () =>
        new Worker(new URL('elkjs/lib/elk-worker.min.js', import.meta.url))
    });
  }
  return elk;
}

/** A key that changes exactly when the nodes or edges of `graph` change. */
export function topology(graph: IRunGraph): string {
  const nodes = graph.nodes.map(n => n.id).join(',');
  const edges = graph.edges.map(e => `${e.source}>${e.target}`).join(',');
  return `${nodes}|${edges}`;
}

/** Lay out `graph` with ELK in its worker. */
export async function layout(graph: IRunGraph): Promise<ILayout> {
  const seen = new Set<string>();
  const edges = graph.edges.filter(e => {
    const key = `${e.source}>${e.target}`;
    const fresh = !seen.has(key);
    seen.add(key);
    return fresh;
  });
  const input: ElkNode = {
    id: 'root',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': 'DOWN',
      'elk.edgeRouting': 'ORTHOGONAL',
      'elk.spacing.nodeNode': '16',
      'elk.layered.spacing.nodeNodeBetweenLayers': '36',
      'elk.padding': '[top=12,left=12,bottom=12,right=12]'
    },
    children: graph.nodes.map(n => ({
      id: String(n.id),
      width: NODE_WIDTH,
      height: NODE_HEIGHT
    })),
    edges: edges.map(e => ({
      id: `${e.source}>${e.target}`,
      sources: [String(e.source)],
      targets: [String(e.target)]
    }))
  };
  const result = await engine().layout(input);
  return {
    nodes: (result.children ?? []).map(c => ({
      id: Number(c.id),
      x: c.x ?? 0,
      y: c.y ?? 0
    })),
    edges: (result.edges ?? []).map(e => ({
      source: Number(e.sources[0]),
      target: Number(e.targets[0]),
      points: (e.sections ?? []).flatMap(s => [
        s.startPoint,
        ...(s.bendPoints ?? []),
        s.endPoint
      ])
    })),
    width: result.width ?? 0,
    height: result.height ?? 0
  };
}
