import pg from 'pg';
const counts = new Map();
const orig = pg.Client.prototype.query;
pg.Client.prototype.query = function (q, ...rest) {
  const text = typeof q === 'string' ? q : q?.text ?? '';
  const k = text.replace(/\s+/g, ' ').slice(0, 70);
  counts.set(k, (counts.get(k) ?? 0) + 1);
  return orig.call(this, q, ...rest);
};
process.on('SIGTERM', () => { console.error([...counts].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([k, n]) => `${n}\t${k}`).join('\n')); process.exit(0); });
