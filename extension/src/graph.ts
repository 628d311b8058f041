/**
 * The run graph drawn as SVG: one `<g data-run data-status>` per run (the status colour
 * comes from the stylesheet) and one path per edge.
 */
import { IGraphNode } from './api';
import { ILayout, NODE_HEIGHT, NODE_WIDTH } from './layout';

const SVG = 'http://www.w3.org/2000/svg';

function element<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | number>,
  parent: Element
): SVGElementTagNameMap[K] {
  const made = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) {
    made.setAttribute(name, String(value));
  }
  parent.appendChild(made);
  return made;
}

function shorten(text: string, length: number): string {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

/** The text lines of a node: run id and label or protocol, protocol, status. */
function lines(node: IGraphNode): [string, string, string] {
  const title = node.label ? `#${node.id} ${node.label}` : `#${node.id}`;
  return [shorten(title, 21), shorten(node.protocol, 22), node.status];
}

function describe(node: IGraphNode): string {
  return `run ${node.id}: ${node.protocol} (${node.status})`;
}

/**
 * Draw the laid-out graph into `svg`, replacing what was there.
 *
 * @param onSelect - called with the run id when a node is clicked
 */
export function draw(
  svg: SVGSVGElement,
  layout: ILayout,
  nodes: IGraphNode[],
  onSelect: (run: number) => void
): void {
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${layout.width} ${layout.height}`);
  const defs = element('defs', {}, svg);
  const marker = element(
    'marker',
    {
      id: 'cryolab-arrow',
      viewBox: '0 0 10 10',
      refX: 10,
      refY: 5,
      markerWidth: 7,
      markerHeight: 7,
      orient: 'auto-start-reverse'
    },
    defs
  );
  element('path', { d: 'M 0 0 L 10 5 L 0 10 z' }, marker);
  for (const edge of layout.edges) {
    const d = edge.points
      .map((p, i) => `${i === 0 ? 'M' : 'L'} ${p.x} ${p.y}`)
      .join(' ');
    element(
      'path',
      {
        class: 'cryolab-edge',
        d,
        'data-source': edge.source,
        'data-target': edge.target,
        'marker-end': 'url(#cryolab-arrow)'
      },
      svg
    );
  }
  const byId = new Map(nodes.map(n => [n.id, n]));
  for (const placed of layout.nodes) {
    const node = byId.get(placed.id);
    if (node === undefined) {
      continue;
    }
    const group = element(
      'g',
      {
        class: 'cryolab-node',
        transform: `translate(${placed.x} ${placed.y})`,
        'data-run': node.id,
        'data-status': node.status,
        tabindex: 0,
        role: 'button'
      },
      svg
    );
    element(
      'rect',
      { width: NODE_WIDTH, height: NODE_HEIGHT, rx: 6, ry: 6 },
      group
    );
    lines(node).forEach((text, i) => {
      const line = element(
        'text',
        { x: 8, y: 16 + i * 15, class: `cryolab-node-line${i}` },
        group
      );
      line.textContent = text;
    });
    const title = element('title', {}, group);
    title.textContent = describe(node);
    group.addEventListener('click', () => onSelect(node.id));
    group.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        onSelect(node.id);
      }
    });
  }
}

/** Update the status, label and selection of the drawn nodes without a new layout. */
export function recolor(
  svg: SVGSVGElement,
  nodes: IGraphNode[],
  selected: number | null
): void {
  for (const node of nodes) {
    const group = svg.querySelector(`g[data-run="${node.id}"]`);
    if (group === null) {
      continue;
    }
    group.setAttribute('data-status', node.status);
    group.classList.toggle('cryolab-selected', node.id === selected);
    const texts = group.querySelectorAll('text');
    lines(node).forEach((text, i) => {
      texts[i].textContent = text;
    });
    const title = group.querySelector('title');
    if (title !== null) {
      title.textContent = describe(node);
    }
  }
}
