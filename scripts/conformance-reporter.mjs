// A node:test reporter for scripts/gen-conformance.mjs: one JSON line per finished test with the file it came
// from, so the generator can tell which test files passed. Human progress goes to a second reporter.
export default async function* conformanceReporter(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { name, nesting, file, skip, todo, details } = event.data;
    const error = details?.error;
    yield `${JSON.stringify({
      ok: event.type === 'test:pass',
      file: file ?? null,
      name,
      nesting,
      skip: skip !== undefined && skip !== false,
      todo: todo !== undefined && todo !== false,
      failureType: error?.failureType ?? null,
      message: error ? String(error.cause?.message ?? error.message ?? '').split('\n')[0].slice(0, 200) : null,
    })}\n`;
  }
}
