// The two-tier state cache: the newest entries as objects, older ones as JSON text, least
// recently used out first.
import test from 'ava';
import { StateCache } from '../../infra/devices/state-cache.ts';

const state = (n: number) => ({ n, apps: { '1000': { name: `app-${n}` } } });

test('hot entries are the very objects kept; older ones come back as equal copies', (t) => {
  const cache = new StateCache<ReturnType<typeof state>>({ hot: 2, cold: 10 });
  const values = [0, 1, 2, 3].map(state);
  values.forEach((v, i) => cache.set(`k${i}`, v));
  t.is(cache.size, 4);
  t.is(cache.get('k3'), values[3], 'hot: the same object');
  t.is(cache.get('k2'), values[2]);
  const cold = cache.get('k0');
  t.not(cold, values[0], 'cold: parsed again');
  t.deepEqual(cold, values[0]);
  t.is(cache.get('k0'), cold, 'a cold entry read becomes hot');
});

test('the cold tier drops its least recently used entries past its size', (t) => {
  const cache = new StateCache<ReturnType<typeof state>>({ hot: 1, cold: 2 });
  for (let i = 0; i < 5; i += 1) cache.set(`k${i}`, state(i));
  t.is(cache.size, 3);
  t.false(cache.has('k0'));
  t.false(cache.has('k1'));
  t.deepEqual(cache.get('k2'), state(2));
  t.true(cache.has('k4'));
});

test('set replaces an entry in either tier; delete and clear remove from both', (t) => {
  const cache = new StateCache<ReturnType<typeof state>>({ hot: 1, cold: 5 });
  cache.set('a', state(1));
  cache.set('b', state(2)); // a turns cold
  cache.set('a', state(3)); // replaces the cold copy, b turns cold
  t.is(cache.size, 2);
  t.deepEqual(cache.get('a'), state(3));
  cache.delete('b');
  t.false(cache.has('b'));
  cache.clear();
  t.is(cache.size, 0);
  t.is(cache.get('a'), undefined);
});

test('the JSON given with a value is what its cold copy is made of', (t) => {
  const cache = new StateCache<{ n: number }>({ hot: 0, cold: 5 });
  cache.set('a', { n: 1 }, '{"n":1}');
  t.deepEqual(cache.get('a'), { n: 1 });
  const off = new StateCache<{ n: number }>({ hot: 0, cold: 0 });
  off.set('a', { n: 1 });
  t.is(off.get('a'), undefined, 'sizes 0: nothing kept');
});

test('reading a hot entry makes it the newest: the least recently used one turns cold first', (t) => {
  const cache = new StateCache<ReturnType<typeof state>>({ hot: 2, cold: 5 });
  const a = state(1);
  cache.set('a', a);
  cache.set('b', state(2));
  t.is(cache.get('a'), a);
  cache.set('c', state(3)); // b, not a, turns cold
  t.is(cache.get('a'), a, 'a is still the very object');
  const b = cache.get('b');
  t.deepEqual(b, state(2));
  t.not(b, undefined);
});
