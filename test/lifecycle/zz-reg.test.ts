import test from 'ava';
import { startTestApp } from '../helpers/app.ts';
test('reg race', async (t) => {
  const app = await startTestApp();
  const { key } = await app.createProvisioningKey();
  for (let round = 0; round < 15; round += 1) {
    const uuid = crypto.randomUUID();
    const results = await Promise.all(Array.from({ length: 6 }, () => app.registerDevice(key, { uuid, deviceApiKey: `same-key-${round}` })));
    const bad = results.filter((r) => r.response.status !== 200 && r.response.status !== 201);
    if (bad.length > 0) console.log(round, bad.map((r) => r.response.text));
  }
  console.log(app.errors);
  await app.close();
  t.pass();
});
