// Mosquitto's dynamic-security plugin, driven over MQTT (issue #18): devicetrail creates,
// disables, enables and deletes each device's client (`device_<uuid>`, bound to that client
// id) and role (its own topics only), by publishing commands to
// `$CONTROL/dynamic-security/v1` as the admin user and reading the answers on
// `…/v1/response`. Commands are idempotent here: "already exists" is success.
// Reference: https://mosquitto.org/documentation/dynamic-security/
import { randomUUID } from 'node:crypto';
import { Buffer } from 'node:buffer';
import type { MqttClient } from 'mqtt';
import { mqttUsername, rejectedTopic, SHARE_GROUP, targetTopic } from './topics.ts';

const COMMANDS = '$CONTROL/dynamic-security/v1';
const RESPONSES = `${COMMANDS}/response`;

/** The role devicetrail gives its own (admin) client: read reports, write targets and rejections. */
export const SERVICE_ROLE = 'devicetrail';

/** One command (`{command: 'createClient', username, …}`). */
export type DynsecCommand = { command: string } & Record<string, unknown>;

/** One command's answer: `error` set when it failed. */
export type DynsecResponse = { command: string; error?: string; data?: unknown };

/** The plugin refused a command. */
export class DynsecError extends Error {
  readonly command: string;
  constructor(command: string, message: string) {
    super(`dynamic security: ${command}: ${message}`);
    this.name = 'DynsecError';
    this.command = command;
  }
}

/** The device's role: publish and subscribe under its own topics, never write the server's two. */
export function deviceRole(uuid: string): DynsecCommand {
  const own = `iot/device/${uuid}/#`;
  return {
    command: 'createRole',
    rolename: mqttUsername(uuid),
    textname: `devicetrail device ${uuid}`,
    acls: [
      // a higher priority is checked first
      { acltype: 'publishClientSend', topic: targetTopic(uuid), priority: 10, allow: false },
      { acltype: 'publishClientSend', topic: rejectedTopic(uuid), priority: 10, allow: false },
      { acltype: 'publishClientSend', topic: own, priority: 0, allow: true },
      { acltype: 'subscribePattern', topic: own, priority: 0, allow: true },
      { acltype: 'unsubscribePattern', topic: own, priority: 0, allow: true },
    ],
  };
}

const serviceAcls = [
  { acltype: 'subscribePattern', topic: `$share/${SHARE_GROUP}/iot/device/+/state`, allow: true },
  { acltype: 'subscribePattern', topic: 'iot/device/+/state', allow: true },
  { acltype: 'publishClientReceive', topic: 'iot/device/+/state', allow: true },
  { acltype: 'publishClientSend', topic: 'iot/device/+/target', allow: true },
  { acltype: 'publishClientSend', topic: 'iot/device/+/state/rejected', allow: true },
  { acltype: 'subscribePattern', topic: '$SYS/broker/clients/connected', allow: true },
  { acltype: 'publishClientReceive', topic: '$SYS/broker/clients/connected', allow: true },
];

const alreadyExists = (response: DynsecResponse) => /already exists/i.test(response.error ?? '');

/** A dynamic-security client over an MQTT connection authenticated as the plugin's admin. */
export type Dynsec = {
  /** Sends commands in one message; resolves with each answer (errors included). */
  execute: (commands: DynsecCommand[]) => Promise<DynsecResponse[]>;
  /** Gives `username` (devicetrail's own client) the service role, creating it when missing. */
  ensureServiceRole: (username: string) => Promise<void>;
  /** Creates or updates the device's role and client with this password, enabled or not. */
  upsertDevice: (uuid: string, password: string, enabled: boolean) => Promise<void>;
  /** Disables (its connection is closed and refused) or enables the device's client. */
  setEnabled: (uuid: string, enabled: boolean) => Promise<void>;
  /** Deletes the device's client and role (absent ones are fine). */
  deleteDevice: (uuid: string) => Promise<void>;
  /** Stops listening for answers (the connection is the caller's). */
  close: () => void;
};

/** Throws for the first failed answer that `ok` does not excuse. */
function check(responses: DynsecResponse[], ok: (r: DynsecResponse) => boolean = () => false): void {
  for (const response of responses) {
    if (response.error !== undefined && !ok(response)) throw new DynsecError(response.command, response.error);
  }
}

/** Starts a dynamic-security client on a connected MQTT client (subscribes to the answers). */
export async function createDynsec(client: MqttClient, options: { timeoutMs?: number } = {}): Promise<Dynsec> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const pending = new Map<string, { resolve: (r: DynsecResponse[]) => void; reject: (e: Error) => void }>();
  const onMessage = (topic: string, payload: Buffer) => {
    if (topic !== RESPONSES) return;
    let parsed: { responses?: (DynsecResponse & { correlationData?: string })[] };
    try {
      parsed = JSON.parse(payload.toString('utf8'));
    } catch {
      return;
    }
    const responses = parsed.responses ?? [];
    const id = responses[0]?.correlationData?.split(':')[0];
    const waiting = id === undefined ? undefined : pending.get(id);
    if (waiting === undefined) return;
    pending.delete(id!);
    waiting.resolve(responses.map(({ correlationData: _c, ...rest }) => rest));
  };
  client.on('message', onMessage);
  await client.subscribeAsync(RESPONSES, { qos: 1 });

  const execute = (commands: DynsecCommand[]): Promise<DynsecResponse[]> => {
    const id = randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`dynamic security: no answer within ${timeoutMs} ms (is the plugin loaded?)`));
      }, timeoutMs);
      pending.set(id, {
        resolve: (responses) => {
          clearTimeout(timer);
          resolve(responses);
        },
        reject,
      });
      const payload = JSON.stringify({
        commands: commands.map((c, i) => ({ ...c, correlationData: `${id}:${i}` })),
      });
      client.publish(COMMANDS, payload, { qos: 1 }, (error) => {
        if (error === undefined || error === null) return;
        clearTimeout(timer);
        pending.delete(id);
        reject(error);
      });
    });
  };

  /** Creates a role; one that exists gets any of the ACLs it lacks (an older devicetrail's role). */
  const ensureRole = async (create: DynsecCommand, changeKicksUs: boolean) => {
    const rolename = create['rolename'] as string;
    const [got] = await execute([{ command: 'getRole', rolename }]);
    if (got?.error !== undefined) {
      if (!/not found/i.test(got.error)) throw new DynsecError('getRole', got.error);
      check(await execute([create]), alreadyExists);
      return;
    }
    const has = (got?.data as { role?: { acls?: { acltype: string; topic: string }[] } } | undefined)?.role?.acls ?? [];
    const missing = (create['acls'] as { acltype: string; topic: string }[])
      .filter((acl) => !has.some((h) => h.acltype === acl.acltype && h.topic === acl.topic));
    if (missing.length === 0) return;
    const commands = missing.map((acl) => ({ ...acl, command: 'addRoleACL', rolename }));
    if (changeKicksUs) await sendExpectingKick(commands);
    else check(await execute(commands), alreadyExists);
  };

  /**
   * Mosquitto closes the connections of every client whose roles change, this one included
   * when the change is to its own roles: the answer may never come. Sends, then waits for
   * the answer or for the connection to come back (MQTT.js reconnects on its own).
   */
  const sendExpectingKick = async (commands: DynsecCommand[]) => {
    let kicked = false;
    const closed = new Promise<void>((resolve) =>
      client.once('close', () => {
        kicked = true;
        resolve();
      })
    );
    await Promise.race([execute(commands).then((responses) => check(responses, alreadyExists)), closed]);
    if (kicked && !client.connected) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error('dynamic security: the broker did not take us back')),
          timeoutMs,
        );
        client.once('connect', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  };

  return {
    execute,
    async ensureServiceRole(username) {
      await ensureRole({ command: 'createRole', rolename: SERVICE_ROLE, acls: serviceAcls }, true);
      const [got] = await execute([{ command: 'getClient', username }]);
      if (got?.error !== undefined) throw new DynsecError('getClient', got.error);
      const roles = (got?.data as { client?: { roles?: { rolename: string }[] } } | undefined)?.client?.roles ?? [];
      if (!roles.some((r) => r.rolename === SERVICE_ROLE)) {
        await sendExpectingKick([{ command: 'addClientRole', username, rolename: SERVICE_ROLE }]);
      }
    },
    async upsertDevice(uuid, password, enabled) {
      const username = mqttUsername(uuid);
      const roles = [{ rolename: username }];
      await ensureRole(deviceRole(uuid), false);
      const created = await execute([{ command: 'createClient', username, password, clientid: username, roles }]);
      check(created, alreadyExists);
      if (alreadyExists(created[0]!)) {
        // modifyClient replaces the password, the client id binding and the roles in one go
        check(await execute([{ command: 'modifyClient', username, password, clientid: username, roles }]));
      }
      check(await execute([{ command: enabled ? 'enableClient' : 'disableClient', username }]));
    },
    async setEnabled(uuid, enabled) {
      check(await execute([{ command: enabled ? 'enableClient' : 'disableClient', username: mqttUsername(uuid) }]));
    },
    async deleteDevice(uuid) {
      const username = mqttUsername(uuid);
      check(
        await execute([{ command: 'deleteClient', username }, { command: 'deleteRole', rolename: username }]),
        (r) => /not found/i.test(r.error ?? ''),
      );
    },
    close() {
      client.off('message', onMessage);
      for (const waiting of pending.values()) waiting.reject(new Error('dynamic security client closed'));
      pending.clear();
    },
  };
}
