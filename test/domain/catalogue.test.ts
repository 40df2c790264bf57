// The catalogue in docs/EVENTS.md covers every event type the domain knows, and each
// example in it is valid data for its type that evolve folds.
import { readFileSync } from 'node:fs';
import test from 'ava';
import { evolve, fold } from '../../domain/device/evolve.ts';
import { type DeviceEvent, deviceEventSchemas, isDeviceEventType } from '../../domain/device/events.ts';
import { deviceReportableTypes } from '../../domain/device/reported-events.ts';
import { provisioningKeyEventSchemas } from '../../domain/provisioning-key/events.ts';
import { type DeviceState, initialState } from '../../domain/device/state.ts';

const doc = readFileSync(new URL('../../docs/EVENTS.md', import.meta.url), 'utf8');
const schemas: Record<string, { safeParse: (v: unknown) => { success: boolean } }> = {
  ...deviceEventSchemas,
  ...provisioningKeyEventSchemas,
};
const allTypes = Object.keys(schemas);

/** `### heading` sections: the event types the heading names and the JSON examples below it. */
const sections = doc.split(/^### /m).slice(1).map((section) => {
  const [heading = '', ...rest] = section.split('\n');
  const body = rest.join('\n').split(/^## /m)[0]!;
  return {
    heading,
    types: [...heading.matchAll(/`([a-z_]+\.[a-z_]+)`/g)].map((m) => m[1]!),
    examples: [...body.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!),
  };
});

test('every event type has a row in the summary table and a section with an example', (t) => {
  const table = doc.split('## Summary')[1]?.split('\n## ')[0] ?? '';
  for (const type of allTypes) {
    t.true(table.includes(`\`${type}\``), `${type}: no row in the summary table`);
    const section = sections.find((s) => s.types.includes(type));
    t.truthy(section, `${type}: no ### section`);
    t.true((section?.examples.length ?? 0) > 0, `${type}: no example`);
  }
  for (const section of sections) {
    for (const type of section.types) {
      t.true(allTypes.includes(type), `${section.heading}: names unknown type ${type}`);
    }
  }
});

test('each example is valid data for the types of its section, and evolve folds every device type', (t) => {
  const base = fold([{
    type: 'device.provisioned',
    timestamp: '2026-03-02T08:00:00.000Z',
    data: {
      device_name: 'd',
      device_type: 't',
      fleet_id: 'f',
      ip_address: null,
      mac_address: null,
      os_version: null,
      supervisor_version: null,
      provisioning_key_id: 'k',
    },
  }], initialState());
  let folded = 0;
  for (const section of sections) {
    for (const example of section.examples) {
      const data: unknown = JSON.parse(example);
      // the metadata sample in "Columns and metadata" is a row, not data of a type
      const fitting = section.types.filter((type) => schemas[type]!.safeParse(data).success);
      t.true(fitting.length > 0, `${section.heading}: example does not match ${section.types.join(' / ')}: ${example}`);
      for (const type of fitting.filter(isDeviceEventType)) {
        const event = { type, data, timestamp: '2026-03-02T09:00:00.000Z' } as DeviceEvent;
        const after: DeviceState = evolve(base, event);
        t.is(after.version, base.version + 1, type);
        folded += 1;
      }
    }
  }
  t.true(folded >= Object.keys(deviceEventSchemas).length);
});

test('every type a device may send is a catalogued device event', (t) => {
  for (const type of deviceReportableTypes) t.true(isDeviceEventType(type), type);
});
