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
      for (const id of ids) {
        const el = registry.get(id);
        if (el) canvas.addMarker(id, el.type === 'bpmn:SubProcess' ? cls + '-container' : cls);
      }
    },
    /** {elementId: count} of active instances waiting there (GET /v1/definitions/{p}/{v}/waiting). */
    counts(map) {
      overlays.remove({ type: 'rv-count' });
      for (const [id, n] of Object.entries(map || {})) {
        if (!n || !registry.get(id)) continue;
        const el = document.createElement('div');
        el.className = 'rv-count';
        el.title = `${faDigits(n)} پرونده در جریان اینجا منتظر است`;
        el.dataset.element = id;
        el.dataset.count = String(n);
        el.textContent = faDigits(n);
        overlays.add(id, 'rv-count', { position: { top: -12, right: 10 }, html: el });
      }
    },
    /** A wide process fits only small: zoom in on where this instance is. */
    focus(ids) {
      const el = ids.map((id) => registry.get(id)).find((e) => e && e.type !== 'bpmn:SubProcess') || registry.get(ids[0]);
      if (!el || canvas.zoom() >= 0.75) return;
      canvas.zoom(0.9);
      canvas.scrollToElement(el, { top: 120, bottom: 120, left: 300, right: 300 });
    },
    incident(ids) {
      for (const id of ids) if (registry.get(id)) canvas.addMarker(id, 'rv-incident');
    },
  };
}
