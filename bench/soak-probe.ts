/**
 * Preloaded into the server by `npm run soak` (node --expose-gc --import): on SIGUSR2 it forces a
 * full garbage collection and writes the heap in use to standard error as one JSON line. Not part
 * of the server; it lets the soak compare the heap before and after.
 */
process.on('SIGUSR2', () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('soak-probe needs node --expose-gc');
  gc();
  gc();
  process.stderr.write(`${JSON.stringify({ soakProbe: { heapUsed: process.memoryUsage().heapUsed } })}\n`);
});
