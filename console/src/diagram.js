// diagram.js -- a process drawn with bpmn-js (the navigated viewer: pan and
// zoom, no editing), with markers where tokens wait and counts per element.
// Loaded on demand, so applicants and staff never download bpmn-js.
import 'bpmn-js/dist/assets/diagram-js.css';
import 'bpmn-js/dist/assets/bpmn-js.css';
import NavigatedViewer from 'bpmn-js/lib/NavigatedViewer';
import { faDigits } from './fa.js';

// Elements where a token can wait (task, timer, message, job, incident).
const WAITING_TYPES = new Set(['bpmn:UserTask', 'bpmn:ServiceTask', 'bpmn:SendTask', 'bpmn:ReceiveTask',
  'bpmn:BusinessRuleTask', 'bpmn:ScriptTask', 'bpmn:Task', 'bpmn:CallActivity', 'bpmn:IntermediateCatchEvent',
  'bpmn:IntermediateThrowEvent', 'bpmn:BoundaryEvent', 'bpmn:ExclusiveGateway', 'bpmn:InclusiveGateway',
  'bpmn:ParallelGateway', 'bpmn:EventBasedGateway']);

/**
 * Draw xml into container. Returns {viewer, waitable: [{id, name}], mark(ids), counts(map)}.
 */
export async function drawProcess(container, xml) {
  const viewer = new NavigatedViewer({ container });
  await viewer.importXML(xml);
  const canvas = viewer.get('canvas');
  const registry = viewer.get('elementRegistry');
  const overlays = viewer.get('overlays');
  canvas.zoom('fit-viewport', 'auto');

  const waitable = registry.filter((e) => WAITING_TYPES.has(e.type) && !e.labelTarget)
    .map((e) => ({ id: e.id, name: e.businessObject?.name || e.id }));

  return {
    viewer,
    waitable,
    /** The elements where this instance's tokens wait. */
    mark(ids, cls = 'rv-here') {
      for (const id of ids) if (registry.get(id)) canvas.addMarker(id, cls);
    },
    /** {elementId: count} of instances waiting there; more: ids with more than counted. */
    counts(map, more = new Set()) {
      overlays.remove({ type: 'rv-count' });
      for (const [id, n] of Object.entries(map)) {
        if (!n || !registry.get(id)) continue;
        const el = document.createElement('div');
        el.className = 'rv-count';
        el.title = `${faDigits(n)}${more.has(id) ? '+' : ''} پرونده اینجا منتظر است`;
        el.dataset.element = id;
        el.dataset.count = String(n);
        el.textContent = faDigits(n) + (more.has(id) ? '+' : '');
        overlays.add(id, 'rv-count', { position: { top: -12, right: 10 }, html: el });
      }
    },
    incident(ids) {
      for (const id of ids) if (registry.get(id)) canvas.addMarker(id, 'rv-incident');
    },
  };
}
