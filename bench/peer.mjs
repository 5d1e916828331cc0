// bench/peer.mjs -- the peer engine's side of bench/run: bpmn-engine (npm,
// bench/package.json) runs the same BPMN files as bench_ravand, in the same
// run, and prints one JSON object like bench_ravand's.
//
//   node bench/peer.mjs straight|human|timer|fanout N
//
// Used as its documentation recommends for speed: each file is parsed once
// (bpmn-moddle) and serialised once to a source context
// (moddle-context-serializer); every instance is a new Engine on that
// sourceContext (an Engine runs one execution), so no instance parses XML.
// Logging stays the default (the `debug` package, off unless DEBUG is set).
//
// What ravand reads from rv:* attributes the peer gets the documented way:
//   - rv:function="bench.fee" (Lua, bench/workloads/scripts/bench.lua): the
//     same function in JavaScript, below, through the engine's `scripts`
//     option (its hook for script languages);
//   - a conditionExpression's text ("fee > 1000000"): the same text
//     evaluated as a JavaScript expression over the process variables,
//     compiled once per flow, through the same `scripts` option;
//   - rv:adapter="echo": environment.services.echo, named by the standard
//     `implementation` attribute; it answers at once (ravand's echo adapter
//     answers inside the command too, as `ravand` runs the engine; bench/run
//     also measures it answering through the loop);
//   - timers: the engine's `timers` option with a settable clock, as
//     bench_ravand uses a virtual clock: start N, then fire every due timer.
// Nothing is persisted: bpmn-engine keeps state in memory (getState() would
// serialise it; it is not called), while ravand commits every command.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from 'bpmn-engine';
import BpmnModdle from 'bpmn-moddle';
import * as elements from 'bpmn-elements';
import Serializer, { TypeResolver } from 'moddle-context-serializer';

const here = path.dirname(fileURLToPath(import.meta.url));
const [wl, nArg] = process.argv.slice(2);
const N = Number(nArg || 1000);
const files = { straight: 'straight.bpmn', human: 'human.bpmn', timer: 'timer.bpmn', fanout: 'fanout.bpmn' };
if (!files[wl] || !(N > 0)) {
  console.error('usage: node bench/peer.mjs straight|human|timer|fanout N');
  process.exit(2);
}

// bench/workloads/scripts/bench.lua, in JavaScript
const functions = {
  'bench.fee': (v) => Math.floor(((v.wage || 0) * 7) / 100),
};

// Parse once.
const source = fs.readFileSync(path.join(here, 'workloads', files[wl]), 'utf8');
const moddleContext = await new BpmnModdle().fromXML(source);
const sourceContext = Serializer(moddleContext, TypeResolver(elements));
const rvFunction = {};   // element id -> { fn, result }
for (const [id, el] of Object.entries(moddleContext.elementsById)) {
  const a = el.$attrs || {};
  if (a['rv:function']) rvFunction[id] = { fn: functions[a['rv:function']], result: a['rv:resultVariable'] };
}

// Scripts: compiled once per element id, shared by every Engine.
const compiled = new Map();
const scripts = {
  register({ id, type, behaviour }) {
    if (compiled.has(id)) return compiled.get(id);
    let script;
    if (type === 'bpmn:SequenceFlow') {
      const body = behaviour.conditionExpression && behaviour.conditionExpression.body;
      if (!body) return undefined;
      const fn = new Function('v', `with (v) { return (${body}); }`);
      script = { execute(ctx, next) { next(null, !!fn(ctx.environment.variables)); } };
    } else if (rvFunction[id]) {
      const { fn, result } = rvFunction[id];
      script = {
        execute(ctx, next) {
          const vars = ctx.environment.variables;
          const r = fn(vars);
          if (result) vars[result] = r;
          next(null, r);
        },
      };
    } else {
      script = { execute(ctx, next) { next(); } };
    }
    compiled.set(id, script);
    return script;
  },
  getScript(language, { id }) {
    return compiled.get(id);
  },
};

const services = { echo(ctx, next) { next(null, { ...ctx.environment.variables }); } };

// A settable clock for timers. One Timers per Engine: an engine that ends
// clears every timer its Timers instance holds.
let pending = [];
const clock = {
  setTimeout(fn, delay, ...args) { const h = { fn, args }; pending.push(h); return h; },
  clearTimeout(h) { if (h) h.fn = null; },
};

function start(vars, listener) {
  const timers = wl === 'timer' ? new elements.Timers(clock) : undefined;
  const engine = new Engine({ name: wl, sourceContext, scripts, timers });
  const done = new Promise((resolve, reject) => {
    engine.once('end', resolve);
    engine.once('error', reject);
  });
  const exec = engine.execute({ variables: { ...vars }, services, listener });
  return { engine, done, exec };
}

const vars = { wage: 120000000, branch: '1203' };
const now = () => Number(process.hrtime.bigint()) / 1e9;
const out = { engine: 'bpmn-engine', version: JSON.parse(fs.readFileSync(path.join(here, 'node_modules', 'bpmn-engine', 'package.json'))).version, workload: wl, n: N, batch: 0, sync: 'memory' };

if (wl === 'straight' || wl === 'fanout') {
  // warm-up (JIT), not timed
  for (let i = 0; i < 200; i++) await start(vars).done;
  const t0 = now();
  for (let i = 0; i < N; i++) await start(vars).done;
  const t = now() - t0;
  Object.assign(out, { seconds: +t.toFixed(4), per_s: +(N / t).toFixed(1) });
} else if (wl === 'human') {
  for (let i = 0; i < 200; i++) {
    const r = start(vars);
    await r.exec;
    r.engine.execution.signal({ id: 'review' });
    await r.done;
  }
  const runs = [];
  let t0 = now();
  for (let i = 0; i < N; i++) {
    const r = start(vars);
    await r.exec;
    runs.push(r);
  }
  const ts = now() - t0;
  t0 = now();
  for (const r of runs) {
    r.engine.execution.signal({ id: 'review' });
    await r.done;
  }
  const tc = now() - t0;
  Object.assign(out, { start_seconds: +ts.toFixed(4), starts_per_s: +(N / ts).toFixed(1),
    complete_seconds: +tc.toFixed(4), completions_per_s: +(N / tc).toFixed(1),
    seconds: +(ts + tc).toFixed(4), per_s: +(N / (ts + tc)).toFixed(1) });
} else if (wl === 'timer') {
  const fireAll = async (runs) => {
    const due = pending; pending = [];
    for (const h of due) if (h.fn) h.fn(...h.args);
    for (const r of runs) await r.done;
  };
  { const w = []; for (let i = 0; i < 200; i++) { const r = start(vars); await r.exec; w.push(r); } await fireAll(w); }
  const runs = [];
  let t0 = now();
  for (let i = 0; i < N; i++) { const r = start(vars); await r.exec; runs.push(r); }
  const ts = now() - t0;
  t0 = now();
  await fireAll(runs);
  const tf = now() - t0;
  Object.assign(out, { start_seconds: +ts.toFixed(4), starts_per_s: +(N / ts).toFixed(1),
    fire_seconds: +tf.toFixed(4), fired_per_s: +(N / tf).toFixed(1),
    seconds: +(ts + tf).toFixed(4), per_s: +(N / (ts + tf)).toFixed(1) });
}
out.peak_rss_kib = Math.round(process.resourceUsage().maxRSS);
console.log(JSON.stringify(out));
