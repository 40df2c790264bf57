// Partition archives: a day partition written to gzip-compressed NDJSON (one event row per
// line, the columns `replay export` writes, so `npm run replay -- … --fixture <file>` reads
// it) with a manifest beside it, then read back and checked against that manifest. Retention
// drops a partition only after `verifyArchive` says its archive is intact.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { createInterface } from 'node:readline';
import { type CommonQueryMethods, sql } from 'slonik';
import { z } from 'zod';
import { storedEventRow } from '../../domain/recorded-event.ts';
import type { EventPartition } from './partition-maintenance.ts';
import { STORED_BYTES } from '../postgres/pool.ts';

const PAGE = 5_000;
const FORMAT = 'devicetrail-events-ndjson-gzip/1';

const columns = sql.fragment`event_id, event_type, aggregate_type, aggregate_id, aggregate_version,
  global_position, transaction_id::text AS transaction_id, data, metadata, "timestamp", source, hash`;

/** What the manifest (<partition>.manifest.json) records about an archive. */
export const archiveManifest = z.object({
  format: z.literal(FORMAT),
  partition: z.string(),
  day: z.string(),
  from: z.string(),
  to: z.string(),
  file: z.string(),
  rows: z.number().int().min(0),
  bytes: z.number().int().min(0),
  /** sha-256 (hex) of the .ndjson.gz file's bytes */
  sha256: z.string(),
  /** sha-256 (hex) of the event ids in the file's order (ascending), one per line */
  event_ids_sha256: z.string(),
  created_at: z.string(),
});
export type ArchiveManifest = z.infer<typeof archiveManifest>;

/** Where a partition's archive and manifest go. */
export function archivePaths(dir: string, partition: string): { file: string; manifest: string } {
  return { file: path.join(dir, `${partition}.ndjson.gz`), manifest: path.join(dir, `${partition}.manifest.json`) };
}

const sha256File = async (file: string): Promise<string> => {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
};

const fsync = async (file: string): Promise<void> => {
  const handle = await open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
};

/**
 * Writes one partition to `<dir>/<partition>.ndjson.gz` in event id order, then its manifest,
 * each through a temporary file renamed into place and synced to disk. Returns the manifest.
 */
export async function writeArchive(
  connection: CommonQueryMethods,
  partition: EventPartition,
  dir: string,
  now: () => Date,
): Promise<ArchiveManifest> {
  await mkdir(dir, { recursive: true });
  const paths = archivePaths(dir, partition.name);
  const ids = createHash('sha256');
  let rows = 0;
  const table = sql.identifier([partition.name]);
  async function* lines(): AsyncGenerator<string> {
    let after: string | null = null;
    for (;;) {
      // a copy of the log: its stored bytes, which the hash chain covers
      const page: readonly z.infer<typeof storedEventRow>[] = await connection.any(sql.type(storedEventRow)`
        ${STORED_BYTES} SELECT ${columns} FROM ${table}
         ${after === null ? sql.fragment`` : sql.fragment`WHERE event_id > ${after}::uuid`}
         ORDER BY event_id LIMIT ${PAGE}`);
      if (page.length === 0) return;
      for (const row of page) ids.update(`${row.event_id}\n`);
      rows += page.length;
      yield page.map((row) => `${JSON.stringify(row)}\n`).join('');
      if (page.length < PAGE) return;
      after = page[page.length - 1]!.event_id;
    }
  }
  const partial = `${paths.file}.partial`;
  await pipeline(Readable.from(lines()), createGzip(), createWriteStream(partial));
  await fsync(partial);
  await rename(partial, paths.file);
  const bytes = (await readFile(paths.file)).length;
  const manifest: ArchiveManifest = {
    format: FORMAT,
    partition: partition.name,
    day: partition.day,
    from: partition.from,
    to: partition.to,
    file: path.basename(paths.file),
    rows,
    bytes,
    sha256: await sha256File(paths.file),
    event_ids_sha256: ids.digest('hex'),
    created_at: now().toISOString(),
  };
  await writeFile(`${paths.manifest}.partial`, `${JSON.stringify(manifest, null, 2)}\n`);
  await fsync(`${paths.manifest}.partial`);
  await rename(`${paths.manifest}.partial`, paths.manifest);
  return manifest;
}

/** The result of reading an archive back: its manifest and what is wrong, if anything. */
export type ArchiveCheck = { manifest: ArchiveManifest | null; rows: number; event_ids: string[]; problems: string[] };

/**
 * Reads an archive back from disk and checks it against its manifest: the file's sha-256 and
 * size, every line an event row inside the partition's day, the row count and the event ids.
 */
export async function verifyArchive(manifestFile: string): Promise<ArchiveCheck> {
  const problems: string[] = [];
  let manifest: ArchiveManifest;
  try {
    manifest = archiveManifest.parse(JSON.parse(await readFile(manifestFile, 'utf8')));
  } catch (error) {
    return {
      manifest: null,
      rows: 0,
      event_ids: [],
      problems: [`manifest ${manifestFile} is unreadable: ${(error as Error).message}`],
    };
  }
  const file = path.join(path.dirname(manifestFile), manifest.file);
  const eventIds: string[] = [];
  try {
    const bytes = (await readFile(file)).length;
    if (bytes !== manifest.bytes) problems.push(`${file} has ${bytes} bytes, the manifest says ${manifest.bytes}`);
    const digest = await sha256File(file);
    if (digest !== manifest.sha256) {
      problems.push(`${file} has sha-256 ${digest}, the manifest says ${manifest.sha256}`);
    }
    const ids = createHash('sha256');
    const from = Date.parse(manifest.from);
    const to = Date.parse(manifest.to);
    let line = 0;
    let previous = '';
    for await (
      const text of createInterface({ input: createReadStream(file).pipe(createGunzip()), crlfDelay: Infinity })
    ) {
      line += 1;
      if (text === '') continue;
      const row = storedEventRow.safeParse(JSON.parse(text));
      if (!row.success) {
        problems.push(`${file}:${line}: not an event row`);
        break;
      }
      const t = Date.parse(row.data.timestamp);
      if (!(t >= from && t < to)) {
        problems.push(`${file}:${line}: event ${row.data.event_id} is outside ${manifest.day}`);
      }
      if (row.data.event_id <= previous) problems.push(`${file}:${line}: event ids are not in ascending order`);
      previous = row.data.event_id;
      ids.update(`${row.data.event_id}\n`);
      eventIds.push(row.data.event_id);
    }
    if (eventIds.length !== manifest.rows) {
      problems.push(`${file} holds ${eventIds.length} events, the manifest says ${manifest.rows}`);
    }
    if (ids.digest('hex') !== manifest.event_ids_sha256) {
      problems.push(`${file}: the event ids differ from the manifest's`);
    }
  } catch (error) {
    problems.push(`${file} cannot be read back: ${(error as Error).message}`);
  }
  return { manifest, rows: eventIds.length, event_ids: eventIds, problems };
}
