import type * as yaml from 'yaml';

/**
 * The yaml package, loaded when a YAML document is first read or written: a worker thread builds its data plane
 * from configuration the main thread already parsed, and would otherwise load yaml's 72 modules for nothing.
 */
let loaded: typeof yaml | undefined;
const lib = (): typeof yaml => (loaded ??= require('yaml') as typeof yaml);

export const parseYaml = (text: string): unknown => lib().parse(text) as unknown;
export const parseAllDocuments = (text: string): ReturnType<typeof yaml.parseAllDocuments> => lib().parseAllDocuments(text);
export const toYaml = (value: unknown): string => lib().stringify(value);
