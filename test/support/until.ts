/** Waits until `cond` holds, polling every `intervalMs`; rejects with `message` after `timeoutMs`. */
export async function until(
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  message = 'condition',
  intervalMs = 10,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() >= deadline) throw new Error(`until: ${message} not met within ${timeoutMs} ms`);
    await new Promise<void>((resolve) => setTimeout(resolve, intervalMs));
  }
}
