import pino from 'pino';
const dest = pino.destination({ dest: '/dev/null', sync: false, minLength: 4096 });
const log = pino({ level: 'info' }, dest);
const n = 200000;
for (let r = 0; r < 3; r++) {
  const t = performance.now();
  for (let i = 0; i < n; i++) log.info({ pool: 'storm', matchId: '7f0c1234-1234-4234-9234-123456789abc', waiter: '127.0.0.1:50214', arrival: '127.0.0.1:50215' }, 'paired');
  const dt = performance.now() - t;
  const t2 = performance.now();
  const chind = log[pino.symbols.chindingsSym];
  for (let i = 0; i < n; i++) dest.write(`{"level":30,"time":${Date.now()}${chind},"pool":${JSON.stringify('storm')},"matchId":"7f0c1234-1234-4234-9234-123456789abc","waiter":${JSON.stringify('127.0.0.1:50214')},"arrival":${JSON.stringify('127.0.0.1:50215')},"msg":"paired"}\n`);
  const dt2 = performance.now() - t2;
  console.log('pino', (dt * 1000 / n).toFixed(2), 'us/line; manual', (dt2 * 1000 / n).toFixed(2), 'us/line');
}
dest.flushSync();
