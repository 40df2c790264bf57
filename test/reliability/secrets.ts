// The secrets grep: none of the secrets a suite used may appear in what the service let out
// (event rows, log lines, response bodies). Also looks for each secret's URL-encoded and
// JSON-escaped forms, and, unless a haystack may hold hashes (the credential tables), for
// its sha-256 hex (a hash is not the secret, but has no business in a log or an event).
import { createHash } from 'node:crypto';

/** A body of text to search, named for the report. */
export type Haystack = { name: string; text: string; mayHoldHashes?: boolean };

/** One line per secret found in a haystack (the secret itself is never printed). */
export function findSecrets(secrets: readonly string[], haystacks: readonly Haystack[]): string[] {
  const found: string[] = [];
  const unique = [...new Set(secrets)].filter((s) => s.length >= 8);
  for (const secret of unique) {
    const forms = [secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)];
    const hash = createHash('sha256').update(secret).digest('hex');
    for (const haystack of haystacks) {
      for (const form of haystack.mayHoldHashes === true ? forms : [...forms, hash]) {
        const at = haystack.text.indexOf(form);
        if (at >= 0) {
          found.push(
            `a secret (${secret.slice(0, 4)}…, ${secret.length} chars) appears in ${haystack.name} at offset ${at}`,
          );
          break;
        }
      }
    }
  }
  return found;
}
