// The MQTT variables (issue #18): on by default on port 1884, off with MQTT=off, an external
// broker only by an mqtt:// or mqtts:// URL.
import test from 'ava';
import { ConfigError, loadConfig } from '../../app/config.ts';

test('MQTT is on by default, on port 1884 (1883 is left to a system broker); MQTT=off turns it off', (t) => {
  t.like(loadConfig({}), { MQTT: true, MQTT_PORT: 1884, MQTT_SUBSCRIBERS: 4 });
  t.is(loadConfig({}).MQTT_URL, undefined);
  t.false(loadConfig({ MQTT: 'off' }).MQTT);
  t.false(loadConfig({ MQTT: 'false' }).MQTT);
  t.true(loadConfig({ MQTT: 'on' }).MQTT);
});

test('MQTT_URL and MQTT_PUBLIC_URL take broker URLs only; bad values are named', (t) => {
  t.is(loadConfig({ MQTT_URL: 'mqtts://broker.example:8883' }).MQTT_URL, 'mqtts://broker.example:8883');
  for (
    const [name, value, problem] of [
      ['MQTT_URL', 'http://broker.example', /MQTT_URL: must be an mqtt:\/\/ or mqtts:\/\/ URL/],
      ['MQTT_PUBLIC_URL', 'tcp://x:1', /MQTT_PUBLIC_URL: must be an mqtt:\/\/, mqtts:\/\/, ws:\/\/ or wss:\/\/ URL/],
      ['MQTT', 'maybe', /MQTT: Invalid enum value/],
      ['MQTT_PORT', '70000', /MQTT_PORT: Number must be less than or equal to 65535/],
      ['MQTT_CLIENT_ID', 'has space', /MQTT_CLIENT_ID: must be 1-60 letters/],
    ] as const
  ) {
    const error = t.throws(() => loadConfig({ [name]: value }), { instanceOf: ConfigError });
    t.regex(error!.message, problem, name);
  }
});
