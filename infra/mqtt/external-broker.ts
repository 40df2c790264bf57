// An external broker (issue #18): Mosquitto 2 with its dynamic-security plugin, at MQTT_URL.
// devicetrail connects as the plugin's admin user (MQTT_ADMIN_USERNAME): one control
// connection manages clients and roles (infra/mqtt/dynsec.ts) and publishes targets and
// rejections; `subscribers` more connections read every device's state reports through the
// shared subscription `$share/devicetrail/iot/device/+/state`, so the instances of one
// deployment split the reports between them.
//
// Acknowledged after commit: MQTT.js sends a QoS 1 PUBACK only when `handleMessage` calls
// back (node_modules/mqtt/build/lib/handlers/publish.js), one message at a time per
// connection. Until then the message stays in flight in the subscriber's persistent session
// (clean: false, a stable client id): if devicetrail dies, the broker sends it again when
// that client id reconnects. A report that could not be handled (the database is away)
// closes the connection unacknowledged, and the reconnection brings the message back.
import { Buffer } from 'node:buffer';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { createDynsec, type Dynsec } from './dynsec.ts';
import type { ReportPacket } from './embedded-broker.ts';
import { SHARED_STATE_SUBSCRIPTION, uuidOfStateTopic } from './topics.ts';

const BROKER_CLIENTS = '$SYS/broker/clients/connected';

/** Where the broker is, who devicetrail is there, and what to do with a report. */
export type ExternalBrokerOptions = {
  url: string;
  username: string;
  password: string;
  /** Stable per instance: the subscribers' persistent sessions are found again by it. */
  clientId: string;
  /** Subscriber connections (each handles one report at a time). */
  subscribers: number;
  /** Handles a device's state report; the broker gets the PUBACK once this resolves. */
  onReport: (uuid: string, packet: ReportPacket) => Promise<void>;
  onError: (message: string, error: unknown) => void;
  /** The broker's count of connected clients ($SYS/broker/clients/connected), devicetrail's own included. */
  onBrokerClients?: (count: number) => void;
  /** Milliseconds to wait for the broker at start and for a publish (default 10 s). */
  timeoutMs?: number;
};

/** The connections to an external broker. */
export type ExternalBroker = {
  dynsec: Dynsec;
  /** Publishes from devicetrail; resolves when the broker acknowledged it (QoS 1). */
  publish: (topic: string, payload: string, options: { qos: 0 | 1; retain: boolean }) => Promise<void>;
  close: () => Promise<void>;
};

/**
 * Connects; `setup` runs before the connection is made, so that a persistent session's
 * messages, which the broker sends right after CONNACK, already meet their handler (MQTT.js's
 * default handler would acknowledge them unhandled).
 */
function connect(
  url: string,
  options: IClientOptions,
  timeoutMs: number,
  setup: (client: MqttClient) => void = () => undefined,
): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { reconnectPeriod: 1000, connectTimeout: timeoutMs, ...options });
    setup(client);
    const timer = setTimeout(() => {
      client.end(true);
      reject(new Error(`mqtt: no answer from ${redactMqttUrl(url)} within ${timeoutMs} ms`));
    }, timeoutMs);
    client.once('connect', () => {
      clearTimeout(timer);
      client.removeListener('error', onError);
      resolve(client);
    });
    const onError = (error: Error) => {
      clearTimeout(timer);
      client.end(true);
      reject(new Error(`mqtt: connecting to ${redactMqttUrl(url)} as ${options.username}: ${error.message}`));
    };
    client.once('error', onError);
  });
}

/** The URL without credentials, for logs. */
export function redactMqttUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    return parsed.toString().replace(/\/$/, '');
  } catch {
    return '(invalid url)';
  }
}

/** Connects the control and subscriber connections; resolves once subscribed. */
export async function connectExternalBroker(options: ExternalBrokerOptions): Promise<ExternalBroker> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const credentials = { username: options.username, password: options.password };
  const control = await connect(options.url, { ...credentials, clientId: `${options.clientId}-control` }, timeoutMs);
  control.on('error', (error) => options.onError('mqtt: control connection', error));
  const subscribers: MqttClient[] = [];
  let dynsec: Dynsec | null = null;
  const close = async () => {
    dynsec?.close();
    await Promise.all([control, ...subscribers].map((c) => c.endAsync(true).catch(() => undefined)));
  };
  try {
    dynsec = await createDynsec(control, { timeoutMs });
    await dynsec.ensureServiceRole(options.username);
    if (options.onBrokerClients !== undefined) {
      const report = options.onBrokerClients;
      control.on('message', (topic, payload) => {
        if (topic === BROKER_CLIENTS) report(Number(payload.toString()) || 0);
      });
      await control.subscribeAsync(BROKER_CLIENTS, { qos: 0 });
    }
    for (let i = 0; i < options.subscribers; i += 1) {
      const subscriber = await connect(
        options.url,
        { ...credentials, clientId: `${options.clientId}-${i}`, clean: false },
        timeoutMs,
        (client) => {
          client.on('error', (error) => options.onError(`mqtt: subscriber ${i}`, error));
          client.handleMessage = (packet, done) => {
            const uuid = uuidOfStateTopic(packet.topic);
            if (uuid === null || packet.qos === undefined) return done();
            options.onReport(uuid, {
              payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
              messageId: packet.messageId,
              qos: packet.qos,
              dup: packet.dup ?? false,
            }).then(() => done(), (error: unknown) => {
              options.onError(
                `mqtt: report from ${uuid} not handled; reconnecting so the broker sends it again`,
                error,
              );
              // no PUBACK: drop the connection; the persistent session keeps the message in flight
              client.end(true, () => client.reconnect());
            });
          };
        },
      );
      subscribers.push(subscriber);
      const granted = await subscriber.subscribeAsync(SHARED_STATE_SUBSCRIPTION, { qos: 1 });
      if (granted.some((g) => g.qos === 128)) {
        throw new Error(`mqtt: the broker refused ${SHARED_STATE_SUBSCRIPTION} to ${options.username}`);
      }
    }
  } catch (error) {
    await close();
    throw error;
  }
  return {
    dynsec,
    publish(topic, payload, { qos, retain }) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`mqtt: publish to ${topic} not acknowledged within ${timeoutMs} ms`)),
          timeoutMs,
        );
        control.publish(topic, payload, { qos, retain }, (error) => {
          clearTimeout(timer);
          if (error) reject(error);
          else resolve();
        });
      });
    },
    close,
  };
}
