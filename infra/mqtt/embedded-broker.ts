// The embedded MQTT broker (issue #18): aedes, in this process, on its own TCP port
// (MQTT_PORT, 1884 by default: 1883 is often a system Mosquitto's). Devices connect as
// `device_<uuid>` with the client id `device_<uuid>` and their password; `admit` decides.
// The topic rules (infra/mqtt/topics.ts) are enforced here: a device publishes and subscribes
// only under `iot/device/<uuid>/`; a publish elsewhere closes its connection (MQTT 3.1.1 has
// no way to refuse one publish), a subscription elsewhere is refused in the SUBACK (128).
//
// A publish to the device's state topic goes to `onReport` before aedes answers it: aedes
// sends a QoS 1 PUBACK (or QoS 2 PUBREC) only after the authorizePublish hook calls back
// (node_modules/aedes/lib/handlers/publish.js), so the acknowledgement follows `onReport`'s
// promise: resolved → acknowledged; rejected → no acknowledgement, the connection is closed
// and the device sends the message again when it reconnects. State reports are for
// devicetrail, not for subscribers: they are never forwarded, nor retained.
import { createServer, type Server, type Socket } from 'node:net';
import { Buffer } from 'node:buffer';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { devicePublishAllowed, deviceSubscribeAllowed, uuidOfStateTopic } from './topics.ts';

/** A connected device. */
export type DeviceSession = { uuid: string; clientId: string; remoteAddress: string | null };

/** A report as it arrived: payload, packet id (QoS > 0), QoS and the DUP flag. */
export type ReportPacket = { payload: Buffer; messageId: number | undefined; qos: 0 | 1 | 2; dup: boolean };

/** Why a device was turned away or a packet refused (for metrics and logs). */
export type Refusal = {
  kind: 'connect' | 'publish' | 'subscribe';
  reason: string;
  session: DeviceSession | null;
  topic?: string;
};

/** What the broker asks of its owner. */
export type EmbeddedBrokerHooks = {
  /**
   * Admits a device or refuses it: 4 (bad username or password) or 5 (not authorized). Runs
   * before the CONNACK; the device's retained target can be published from here.
   */
  admit: (
    username: string | undefined,
    password: Buffer | undefined,
    clientId: string,
  ) => Promise<{ uuid: string } | { refuse: 4 | 5; reason: string }>;
  /** Handles a state report; the broker acknowledges it once this resolves. */
  onReport: (session: DeviceSession, packet: ReportPacket) => Promise<void>;
  onConnect?: (session: DeviceSession) => void;
  onDisconnect?: (session: DeviceSession) => void;
  /** A PINGREQ (keep-alive): the device is there. */
  onPing?: (session: DeviceSession) => void;
  /** A message devicetrail published is being written to a device's connection. */
  onForward?: (session: DeviceSession, topic: string, payload: Buffer) => void;
  onRefused?: (refusal: Refusal) => void;
  onError?: (message: string, error: unknown) => void;
};

/** The running broker. */
export type EmbeddedBroker = {
  /** The port it listens on (useful with port 0). */
  port: number;
  /** Publishes from devicetrail itself; resolves once stored and routed. */
  publish: (topic: string, payload: string, options: { qos: 0 | 1; retain: boolean }) => Promise<void>;
  /** Closes a device's connection, if it has one. */
  disconnect: (uuid: string) => Promise<boolean>;
  /** Whether the device is connected now. */
  isConnected: (uuid: string) => boolean;
  /** Connected devices. */
  connectedCount: () => number;
  /** Stops accepting, closes every connection and the broker. */
  close: () => Promise<void>;
};

/** Options: where to listen, the hooks, and the largest state report accepted. */
export type EmbeddedBrokerOptions = { host: string; port: number; hooks: EmbeddedBrokerHooks };

function authError(returnCode: 4 | 5, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

/** Starts aedes on `host:port`; resolves once it listens. */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const { hooks } = options;
  const sessions = new WeakMap<Client, DeviceSession>();
  const byUuid = new Map<string, Client>();
  const fail = (message: string, error: unknown) => hooks.onError?.(message, error);
  const refuse = (refusal: Refusal) => {
    try {
      hooks.onRefused?.(refusal);
    } catch (error) {
      fail('mqtt: onRefused hook failed', error);
    }
  };

  const broker = await Aedes.createBroker({
    // `device_` + a uuid is 43 characters; MQTT 3.1.1 allows servers longer ids than 23
    maxClientsIdLength: 128,
    authenticate(client, username, password, done) {
      hooks.admit(username, password, client.id).then((verdict) => {
        if ('refuse' in verdict) {
          refuse({ kind: 'connect', reason: verdict.reason, session: null });
          done(authError(verdict.refuse, verdict.reason), false);
          return;
        }
        const socket = client.conn as Partial<Socket>;
        sessions.set(client, { uuid: verdict.uuid, clientId: client.id, remoteAddress: socket.remoteAddress ?? null });
        done(null, true);
      }, (error: unknown) => {
        fail(`mqtt: admitting client ${client.id} failed`, error);
        // 3: server unavailable; the device tries again later
        done(Object.assign(new Error('server unavailable'), { returnCode: 3 }) as unknown as AuthenticateError, false);
      });
    },
    authorizePublish(client, packet, done) {
      const session = client === null ? null : sessions.get(client);
      if (client === null) return done(null); // devicetrail's own publishes
      if (session === undefined || session === null || !devicePublishAllowed(session.uuid, packet.topic)) {
        refuse({ kind: 'publish', reason: 'topic not allowed', session: session ?? null, topic: packet.topic });
        return done(new Error(`publishing to ${packet.topic} is not allowed`));
      }
      if (uuidOfStateTopic(packet.topic) !== session.uuid) return done(null);
      packet.retain = false;
      hooks.onReport(session, {
        payload: Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
        messageId: packet.messageId,
        qos: packet.qos,
        dup: packet.dup,
      }).then(() => done(null), (error: unknown) => {
        fail(`mqtt: report from ${session.uuid} not handled; closing its connection unacknowledged`, error);
        done(error instanceof Error ? error : new Error(String(error)));
      });
    },
    authorizeSubscribe(client, subscription, done) {
      const session = sessions.get(client);
      if (session === undefined || !deviceSubscribeAllowed(session.uuid, subscription.topic)) {
        refuse({
          kind: 'subscribe',
          reason: 'topic filter not allowed',
          session: session ?? null,
          topic: subscription.topic,
        });
        return done(null, null);
      }
      done(null, subscription);
    },
    authorizeForward(client, packet) {
      const fromDevice = (packet as { clientId?: string }).clientId !== undefined;
      // state reports go to devicetrail only, never back out to subscribers
      if (fromDevice && uuidOfStateTopic(packet.topic) !== null) return null;
      const session = sessions.get(client);
      if (!fromDevice && session !== undefined) {
        hooks.onForward?.(
          session,
          packet.topic,
          Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload),
        );
      }
      return packet;
    },
  });

  broker.on('client', (client) => {
    const session = sessions.get(client);
    if (session === undefined) return;
    byUuid.set(session.uuid, client);
    hooks.onConnect?.(session);
  });
  broker.on('clientDisconnect', (client) => {
    const session = sessions.get(client);
    if (session === undefined) return;
    if (byUuid.get(session.uuid) === client) byUuid.delete(session.uuid);
    hooks.onDisconnect?.(session);
  });
  broker.on('ping', (_packet, client) => {
    const session = sessions.get(client);
    if (session !== undefined) hooks.onPing?.(session);
  });
  broker.on('clientError', (client, error) => {
    // a device that went away mid-packet, or one closed for a refused publish: not ours to log loudly
    if (sessions.get(client) === undefined) return;
    void error;
  });

  const server: Server = createServer(broker.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // exclusive: in a cluster worker (WORKERS > 1) the broker binds its own socket, not one
    // the primary shares out: the broker exists in exactly one process (app/cluster/primary.ts)
    server.listen({ port: options.port, host: options.host, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (error) => fail('mqtt: listener error', error));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;

  return {
    port,
    publish(topic, payload, { qos, retain }) {
      return new Promise((resolve, reject) => {
        broker.publish(
          { cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain, dup: false },
          (error?: Error) => (error ? reject(error) : resolve()),
        );
      });
    },
    disconnect(uuid) {
      const client = byUuid.get(uuid);
      if (client === undefined) return Promise.resolve(false);
      return new Promise((resolve) => client.close(() => resolve(true)));
    },
    isConnected: (uuid) => byUuid.has(uuid),
    connectedCount: () => byUuid.size,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // close() waits for open sockets; the broker closes them
        broker.close();
      });
    },
  };
}
