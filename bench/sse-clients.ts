// The stream clients of bench/sse-streams.ts, in a process of their own: reading 300 streams in
// the benchmark's process would delay its own requests and inflate the latencies it reports.
// Driven over IPC: {type: 'open', base, admin, queries} → {type: 'opened', statuses};
// {type: 'report'} → {type: 'report', received, reads}; {type: 'close'} closes and exits.
import process from 'node:process';

type Counter = { status: number; events: number; reads: number };

const controller = new AbortController();
const counters: Counter[] = [];
const done: Promise<void>[] = [];

function open(base: string, admin: string, query: string): void {
  const counter: Counter = { status: 0, events: 0, reads: 0 };
  counters.push(counter);
  done.push(
    fetch(`${base}/events/stream${query}`, { headers: { authorization: `Bearer ${admin}` }, signal: controller.signal })
      .then(async (response) => {
        counter.status = response.status;
        if (response.body === null) return;
        const decoder = new TextDecoder();
        for await (const chunk of response.body) {
          counter.reads += 1;
          counter.events += decoder.decode(chunk as Uint8Array, { stream: true }).split('\ndata: ').length - 1;
        }
      }).catch(() => undefined),
  );
}

type Message = { type: 'open'; base: string; admin: string; queries: string[] } | { type: 'report' } | {
  type: 'close';
};

process.on('message', async (message: Message) => {
  switch (message.type) {
    case 'open': {
      // in waves, as clients come: 300 at once would be a connection storm, not what is measured
      for (let i = 0; i < message.queries.length; i += 25) {
        for (const query of message.queries.slice(i, i + 25)) open(message.base, message.admin, query);
        for (let wait = 0; wait < 100 && counters.some((c) => c.status === 0); wait += 1) {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      const statuses: Record<number, number> = {};
      for (const c of counters) statuses[c.status] = (statuses[c.status] ?? 0) + 1;
      process.send!({ type: 'opened', statuses });
      break;
    }
    case 'report':
      process.send!({ type: 'report', received: counters.map((c) => c.events), reads: counters.map((c) => c.reads) });
      break;
    case 'close':
      controller.abort();
      await Promise.all(done);
      process.exit(0);
      break;
    default: {
      const unreachable: never = message;
      return unreachable;
    }
  }
});
