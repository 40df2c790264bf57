// Lookups by keys that come from input (app ids, service names, config keys): `record[key]` on a
// plain object also finds what Object.prototype holds ("constructor", "toString", …), which the
// fold would then take for an app or a list (a TypeError, then a 500). Every such lookup goes
// through `own`.

/**
 * `record[key]`, except that a key Object.prototype defines is looked up among the record's own
 * properties only. (Other inherited keys are left as they were: they exist only on a record whose
 * prototype a "__proto__" key replaced, which input validation strips before anything is stored,
 * and test/replay/fold-reference.test.ts pins the fold's old meaning there.)
 */
export function own<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return key in Object.prototype && !Object.hasOwn(record, key) ? undefined : record[key];
}
