// Devices over MQTT (issue #18): the transport the service starts with its other jobs
// (app/main.ts), in one of two modes.
//
// - embedded (default): aedes in this process on MQTT_HOST:MQTT_PORT (infra/mqtt/embedded-broker.ts).
//   devicetrail is the broker: it admits devices by their MQTT credential, enforces the topic
//   rules, and acknowledges a state report only after its events are committed.
// - external (MQTT_URL): a Mosquitto 2 with the dynamic-security plugin. devicetrail creates,
//   updates, disables and deletes each device's client and role there, and reads the reports
//   through a shared subscription, acknowledging each to the broker after commit
//   (infra/mqtt/external-broker.ts).
//
// In both: state reports take the HTTP report path (app/mqtt/report-handler.ts), target
// changes are published and disabled devices cut off from the log (app/mqtt/target-push.ts),
// and the credential is issued at registration (`issueCredentials`).
import type { SecretHasher } from '../../infra/secrets/hasher.ts';
import { hostname } from 'node:os';
import type { DatabasePool } from 'slonik';
import { recordDeviceContact, touchContact } from '../../infra/devices/contact.ts';
import type { EventStore } from '../../infra/event-store/event-store.ts';
import {
  findCredential,
  issueCredential,
  passwordMatches,
  upgradePasswordHash,
} from '../../infra/mqtt/credentials-store.ts';
import type { CredentialHasher } from '../../infra/devices/credentials.ts';
import { type EmbeddedBroker, type ReportPacket, startEmbeddedBroker } from '../../infra/mqtt/embedded-broker.ts';
import { connectExternalBroker, type ExternalBroker, redactMqttUrl } from '../../infra/mqtt/external-broker.ts';
import { mqttUsername, rejectedTopic, targetTopic, uuidOfUsername } from '../../infra/mqtt/topics.ts';
import type { RealtimeLog } from '../../infra/realtime/leader-loop.ts';
import type { Config } from '../config.ts';
import type { RateLimit } from '../http/middleware/rate-limit.ts';
import { stateReportsFor } from '../state-reports.ts';
import { type MqttMetrics, mqttMetricsFor } from './mqtt-metrics.ts';
import { createReportHandler, type ReportSender } from './report-handler.ts';
import { createBrokerSyncListener, MQTT_LISTENER, targetNotice } from './target-push.ts';
import { registerLagGauge } from '../observability/metrics.ts';
import { createDeliveryRecorder } from '../target-deliveries.ts';
import type { Buffer } from 'node:buffer';
import type { Registry } from 'prom-client';

/** The settings the transport reads (app/config.ts). */
export type MqttSettings =
  & Pick<
    Config,
    | 'MQTT_PORT'
    | 'MQTT_HOST'
    | 'MQTT_URL'
    | 'MQTT_PUBLIC_URL'
    | 'MQTT_ADMIN_USERNAME'
    | 'MQTT_ADMIN_PASSWORD'
    | 'MQTT_CLIENT_ID'
    | 'MQTT_SUBSCRIBERS'
    | 'HOST'
    | 'PORT'
    | 'BODY_LIMIT_KB'
    | 'LISTENER_POLL_MS'
  >
  & { REPORT_RATE_LIMIT: RateLimit | null };

/** A device's MQTT credential as the registration reply carries it. */
export type MqttCredentials = { username: string; password: string; broker: string };

/** The running transport. */
export type MqttTransport = {
  mode: 'embedded' | 'external';
  /** Where the broker is: the embedded one's listening address, or MQTT_URL without credentials. */
  url: string;
  /** What devices are told: MQTT_PUBLIC_URL, else derived from the host name the device reached the API by. */
  publicUrl: (requestHost?: string) => string;
  /**
   * Issues the device's credential (a new password; the old one stops working and its
   * connection is closed). Null when the device is not registered. Throws when an external
   * broker did not take it.
   */
  issueCredentials: (uuid: string, requestHost?: string) => Promise<MqttCredentials | null>;
  /** Whether the device is connected now (null: the external broker does not say). */
  isConnected: (uuid: string) => boolean | null;
  stop: () => Promise<void>;
};

/** What the transport needs from the process. */
export type MqttDependencies = {
  pool: DatabasePool;
  store: EventStore;
  clock: () => Date;
  log: RealtimeLog;
  /** Hashes reported secret values before anything is stored (the app's; README "Secrets"). */
  secrets: SecretHasher;
  /** The app's metrics registry (none: no metrics). */
  registry?: Registry;
  /** In a cluster worker (WORKERS > 1) with an external broker: its index, for a client id of its own. */
  workerIndex?: number;
  /** Hashes MQTT passwords with the server's pepper (the same one the HTTP app uses). */
  hasher: CredentialHasher;
};

/** The target version a notice carries (infra target-push's TargetNotice); null when it is not one. */
function noticeVersion(payload: Buffer): number | null {
  try {
    const version = (JSON.parse(payload.toString('utf8')) as { version?: unknown }).version;
    return typeof version === 'number' && Number.isInteger(version) ? version : null;
  } catch {
    return null;
  }
}

/** A PINGREQ counts as contact at most this often per device. */
const PING_CONTACT_MS = 30_000;

const wildcard = (host: string) => host === '0.0.0.0' || host === '::' || host === '';

/** Starts the broker (or connects to the external one) and the listener; resolves once ready. */
export async function startMqttTransport(settings: MqttSettings, deps: MqttDependencies): Promise<MqttTransport> {
  const { pool, store, clock, log, hasher } = deps;
  const logError = (message: string, error: unknown) => log('error', message, error);
  let metrics: MqttMetrics | null = null;
  let connected: () => number | null = () => null;
  if (deps.registry !== undefined) metrics = mqttMetricsFor(deps.registry, () => connected());

  let publish: (topic: string, payload: string, options: { qos: 0 | 1; retain: boolean }) => Promise<void> = () =>
    Promise.reject(new Error('mqtt: not started'));
  const handler = createReportHandler({
    pool,
    reports: stateReportsFor(pool, store, deps.secrets),
    clock,
    rateLimit: settings.REPORT_RATE_LIMIT,
    maxPayloadBytes: settings.BODY_LIMIT_KB * 1024,
    publishRejected: (uuid, body) => publish(rejectedTopic(uuid), JSON.stringify(body), { qos: 1, retain: false }),
    onVerdict: (_sender, verdict, seconds) =>
      metrics?.report(
        verdict.result,
        verdict.result === 'rejected' ? verdict.code : '',
        seconds,
        verdict.result === 'accepted' ? verdict.ignored : [],
      ),
    logError,
  });

  /** Handles a report; a refused device is cut off (it should not be connected: disabled, unknown). */
  let disconnect: (uuid: string) => Promise<unknown> = async () => undefined;
  const onReport = async (sender: ReportSender, packet: ReportPacket) => {
    const verdict = await handler.handle(sender, packet);
    if (verdict.result === 'rejected' && (verdict.code === 'device_inactive' || verdict.code === 'device_not_found')) {
      void disconnect(sender.uuid).catch((error) => logError(`mqtt: disconnecting ${sender.uuid}`, error));
    }
  };

  const contact = (uuid: string, endpoint: string, remoteAddress: string | null) =>
    recordDeviceContact(pool, store, uuid, clock().toISOString(), {
      ip_address: remoteAddress,
      user_agent: null,
      endpoint,
      request_id: null,
      actor: { type: 'device', id: uuid },
    }).catch((error) => logError(`mqtt: recording the contact of ${uuid}`, error));

  // notices written to a device's connection are the target's delivery over MQTT (the embedded
  // broker sees them; an external one does not say)
  const deliveries = createDeliveryRecorder(pool, clock, logError);
  let embedded: EmbeddedBroker | null = null;
  let external: ExternalBroker | null = null;
  const delivered = new Map<string, number>();
  let url: string;
  let mode: MqttTransport['mode'];

  if (settings.MQTT_URL === undefined) {
    mode = 'embedded';
    const lastPing = new Map<string, number>();
    const host = settings.MQTT_HOST ?? settings.HOST;
    embedded = await startEmbeddedBroker({
      host,
      port: settings.MQTT_PORT,
      hooks: {
        async admit(username, password, clientId) {
          const uuid = username === undefined ? null : uuidOfUsername(username);
          if (uuid === null) return { refuse: 4, reason: 'unknown username' };
          const credential = await findCredential(pool, username!);
          if (credential === null || !passwordMatches(hasher, credential, password)) {
            return { refuse: 4, reason: 'bad username or password' };
          }
          await upgradePasswordHash(pool, hasher, credential, password!);
          if (clientId !== mqttUsername(uuid)) return { refuse: 5, reason: 'client id must be the username' };
          if (!credential.isActive) {
            // a disabled device's refused call still shows it is alive
            await touchContact(pool, uuid, clock().toISOString());
            return { refuse: 5, reason: 'device is disabled' };
          }
          if (credential.targetVersion > 0) {
            // the retained notice outlives neither a restart nor an in-memory store: put it back
            const notice = targetNotice(uuid, credential.targetVersion, credential.targetUpdatedAt ?? '');
            await embedded!.publish(targetTopic(uuid), JSON.stringify(notice), { qos: 1, retain: true });
          }
          return { uuid };
        },
        onReport: (session, packet) => onReport(session, packet),
        onConnect: (session) => void contact(session.uuid, 'mqtt:connect', session.remoteAddress),
        onDisconnect: (session) => {
          lastPing.delete(session.uuid);
          void touchContact(pool, session.uuid, clock().toISOString())
            .catch((error) => logError(`mqtt: recording the contact of ${session.uuid}`, error));
        },
        onPing: (session) => {
          const now = clock().getTime();
          if (now - (lastPing.get(session.uuid) ?? 0) < PING_CONTACT_MS) return;
          lastPing.set(session.uuid, now);
          void contact(session.uuid, 'mqtt:ping', session.remoteAddress);
        },
        onForward: (session, topic, payload) => {
          if (topic !== targetTopic(session.uuid)) return;
          const version = noticeVersion(payload);
          if (version !== null) void deliveries.note(session.uuid, version, 'mqtt');
          const at = delivered.get(session.uuid);
          if (at === undefined) return;
          delivered.delete(session.uuid);
          metrics?.target('sent', (clock().getTime() - at) / 1000);
        },
        onRefused: (refusal) => metrics?.refused(refusal.kind, refusal.reason),
        onError: logError,
      },
    });
    const broker = embedded;
    publish = (topic, payload, options) => broker.publish(topic, payload, options);
    disconnect = (uuid) => broker.disconnect(uuid);
    connected = () => broker.connectedCount();
    url = `mqtt://${host.includes(':') ? `[${host}]` : host}:${broker.port}`;
  } else {
    mode = 'external';
    if (settings.MQTT_ADMIN_USERNAME === undefined || settings.MQTT_ADMIN_PASSWORD === undefined) {
      throw new Error(
        'MQTT_URL needs MQTT_ADMIN_USERNAME and MQTT_ADMIN_PASSWORD (the dynamic-security admin devicetrail manages devices as)',
      );
    }
    let brokerClients: number | null = null;
    external = await connectExternalBroker({
      url: settings.MQTT_URL,
      username: settings.MQTT_ADMIN_USERNAME,
      password: settings.MQTT_ADMIN_PASSWORD,
      // each cluster worker subscribes as a client of its own (the broker would end a second
      // session with the same id)
      clientId: `${settings.MQTT_CLIENT_ID ?? `devicetrail-${hostname()}-${settings.PORT}`}${
        deps.workerIndex === undefined ? '' : `-w${deps.workerIndex}`
      }`,
      subscribers: settings.MQTT_SUBSCRIBERS,
      onReport: (uuid, packet) => onReport({ uuid, remoteAddress: null }, packet),
      onError: logError,
      onBrokerClients: (n) => {
        brokerClients = n;
      },
    });
    const broker = external;
    publish = (topic, payload, options) => broker.publish(topic, payload, options);
    disconnect = (uuid) => broker.dynsec.setEnabled(uuid, false);
    connected = () => brokerClients;
    url = redactMqttUrl(settings.MQTT_URL);
  }

  const listener = createBrokerSyncListener(pool, {
    publish: (topic, payload, options) => publish(topic, payload, options),
    async setDisabled(uuid, disabled) {
      if (embedded !== null) {
        if (disabled) await embedded.disconnect(uuid);
        return;
      }
      // a device that never got a credential has no client at the broker: nothing to change
      if ((await findCredential(pool, mqttUsername(uuid))) === null) return;
      await external!.dynsec.setEnabled(uuid, !disabled);
    },
    onPublished: (uuid, event, seconds) => {
      metrics?.target('published', seconds);
      delivered.set(uuid, Date.parse(event.timestamp));
      if (delivered.size > 100_000) delivered.delete(delivered.keys().next().value!);
    },
  }, { pollIntervalMs: settings.LISTENER_POLL_MS, log, clock });
  try {
    await listener.start();
  } catch (error) {
    await (embedded?.close() ?? external?.close());
    throw error;
  }
  const unregisterLag = registerLagGauge(MQTT_LISTENER, async () => {
    const lag = await listener.lag();
    return { events: lag.events_behind, seconds: lag.seconds_behind };
  });

  const publicUrl = (requestHost?: string): string => {
    if (settings.MQTT_PUBLIC_URL !== undefined) return settings.MQTT_PUBLIC_URL;
    if (mode === 'external') return url;
    const own = settings.MQTT_HOST ?? settings.HOST;
    // the host the device reached the API by (only a plain host name or address literal)
    const asked = requestHost !== undefined && /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]{1,253})$/.test(requestHost)
      ? requestHost
      : null;
    const host = asked ?? (wildcard(own) ? 'localhost' : own);
    return `mqtt://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${embedded!.port}`;
  };

  return {
    mode,
    url,
    publicUrl,
    async issueCredentials(uuid, requestHost) {
      const issued = await issueCredential(pool, hasher, uuid);
      if (issued === null) return null;
      if (external !== null) {
        const stored = await findCredential(pool, issued.username);
        await external.dynsec.upsertDevice(uuid, issued.password, stored?.isActive ?? true);
      } else {
        // a session opened with the old password ends
        await embedded!.disconnect(uuid);
      }
      return { username: issued.username, password: issued.password, broker: publicUrl(requestHost) };
    },
    isConnected: (uuid) => (embedded === null ? null : embedded.isConnected(uuid)),
    async stop() {
      unregisterLag();
      await listener.stop();
      if (embedded !== null) await embedded.close();
      if (external !== null) await external.close();
    },
  };
}
