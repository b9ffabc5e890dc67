/** Human progress lines on stderr, with elapsed time, so stdout stays clean for --report json. */
export function createProgress(prefix = ''): (message: string) => void {
  const started = Date.now();
  return (message) => {
    const s = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
    process.stderr.write(`[${s}s] ${prefix}${message}\n`);
  };
}
