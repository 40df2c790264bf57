// The console's device page shows the device's telemetry (issue #15's series and logs): the
// latest metrics sample, an hourly chart per charted gauge, and the newest log lines, escaped;
// and its Connection section says when MQTT is off.
import test from 'ava';
import { startConsoleApp } from './console-app.ts';

test('the device page shows the latest metrics, their charts and the newest log lines (escaped)', async (t) => {
  const app = await startConsoleApp();
  t.teardown(() => app.close());
  const { uuid, deviceKey } = await app.registerDevice({ name: 'telemetry-device' });
  const before = await app.request(`/devices/${uuid}`, { token: app.admin.token });
  t.is(before.status, 200);
  t.regex(before.text, /No metrics sample yet/);
  t.regex(before.text, /No log line in the last day/);
  t.regex(before.text, /MQTT off/, 'the console app runs without MQTT');

  for (const cpu of [10, 30]) {
    const report = await app.request('/api/v1/device/state', {
      method: 'PATCH',
      token: deviceKey,
      body: { [uuid]: { cpu_usage: cpu, memory_usage: 512, temperature: 41.5 } },
    });
    t.is(report.status, 200, report.text);
  }
  const logs = await app.request(`/api/v1/device/${uuid}/logs`, {
    method: 'POST',
    token: deviceKey,
    body: [
      { message: 'container <main> started & ready', level: 'info', serviceName: 'main' },
      { message: 'disk almost full', level: 'warn', isStdErr: true },
    ],
  });
  t.is(logs.status, 201, logs.text);

  const page = await app.request(`/devices/${uuid}`, { token: app.admin.token });
  t.is(page.status, 200);
  const metrics = page.text.slice(page.text.indexOf('id="device-metrics"'), page.text.indexOf('id="device-logs"'));
  t.regex(metrics, /Latest sample/);
  t.regex(metrics, /<code>cpu_usage<\/code> 30/);
  t.regex(metrics, /<code>temperature<\/code> 41\.50/);
  t.regex(metrics, /id="metric-cpu_usage"/, 'a chart of cpu_usage');
  t.regex(metrics, /cpu_usage, hourly mean/);
  t.regex(metrics, /: 20<\/title>/, "the hour's mean of 10 and 30");
  t.notRegex(metrics, /id="metric-cpu_temp"/, 'no chart for a gauge never reported');
  const section = page.text.slice(page.text.indexOf('id="device-logs"'));
  t.regex(section, /container &lt;main&gt; started &amp; ready/);
  t.notRegex(section, /<main>/);
  t.regex(section, /warn \(stderr\)/);
  t.true(section.indexOf('disk almost full') < section.indexOf('container &lt;main&gt;'), 'newest first');
});
