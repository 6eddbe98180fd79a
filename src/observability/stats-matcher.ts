/**
 * Envoy's StatsMatcher (envoy.config.metrics.v3.StatsMatcher, source/common/stats/stats_matcher_impl.cc): which
 * stats exist at all. `reject_all: true` keeps none, `false` every one; `inclusion_list` keeps the stats whose
 * full name matches one of its matchers; `exclusion_list` drops them. Without a matcher every stat is kept.
 * A stat that is not kept appears nowhere (/stats, /stats/prometheus), as in Envoy, which never creates it.
 */
import { ConfigError } from '../common/errors';
import type { ProtoObject } from '../xds/proto-json';

type Match = (name: string) => boolean;

/** Set in the message itself (decoded messages carry proto defaults on their prototype). */
function has(m: ProtoObject, field: string): boolean {
  return Object.prototype.hasOwnProperty.call(m, field) && m[field] !== null && m[field] !== undefined;
}

/** One envoy.type.matcher.v3.StringMatcher (exact, prefix, suffix, contains, safe_regex; ignore_case). */
export function stringMatcher(m: ProtoObject, path: string): Match {
  const ignoreCase = m['ignore_case'] === true;
  const norm = (s: string): string => (ignoreCase ? s.toLowerCase() : s);
  for (const kind of ['exact', 'prefix', 'suffix', 'contains'] as const) {
    if (!has(m, kind)) continue;
    const want = norm(String(m[kind]));
    switch (kind) {
      case 'exact': return (n) => norm(n) === want;
      case 'prefix': return (n) => norm(n).startsWith(want);
      case 'suffix': return (n) => norm(n).endsWith(want);
      case 'contains': return (n) => norm(n).includes(want);
    }
  }
  const re = has(m, 'safe_regex') ? (m['safe_regex'] as ProtoObject) : undefined;
  if (re) {
    const source = String(re['regex'] ?? '');
    let regex: RegExp;
    try {
      // RE2 full match, as Envoy's safe_regex matchers.
      regex = new RegExp(`^(?:${source})$`);
    } catch (err) {
      throw new ConfigError(`invalid regex: ${(err as Error).message}`, `${path}.safe_regex.regex`, { cause: err });
    }
    return (n) => regex.test(n);
  }
  throw new ConfigError('needs one of exact, prefix, suffix, contains or safe_regex', path);
}

function listMatcher(list: ProtoObject, path: string): Match {
  const patterns = ((list['patterns'] as ProtoObject[] | undefined) ?? []).map((p, i) => stringMatcher(p, `${path}.patterns[${i}]`));
  return (n) => patterns.some((p) => p(n));
}

export class StatsMatcher {
  /** Every stat kept (no stats_matcher). */
  static readonly ACCEPT_ALL = new StatsMatcher(() => true);

  private constructor(private readonly keep: Match) {}

  /** From a decoded StatsMatcher message; `path` names it in errors (`stats_config.stats_matcher`). */
  static fromProto(msg: ProtoObject | null | undefined, path: string): StatsMatcher {
    if (!msg) return StatsMatcher.ACCEPT_ALL;
    // The three are a oneof; the decoder may carry reject_all's default (false) beside a list, so lists first.
    const inclusion = has(msg, 'inclusion_list') ? (msg['inclusion_list'] as ProtoObject) : undefined;
    if (inclusion) return new StatsMatcher(listMatcher(inclusion, `${path}.inclusion_list`));
    const exclusion = has(msg, 'exclusion_list') ? (msg['exclusion_list'] as ProtoObject) : undefined;
    if (exclusion) {
      const excluded = listMatcher(exclusion, `${path}.exclusion_list`);
      return new StatsMatcher((n) => !excluded(n));
    }
    return msg['reject_all'] === true ? new StatsMatcher(() => false) : StatsMatcher.ACCEPT_ALL;
  }

  /** Whether the stat of this full name exists. */
  accepts(name: string): boolean {
    return this.keep(name);
  }
}

/** Envoy's default histogram bucket bounds (HistogramSettingsImpl::defaultBuckets). */
export const ENVOY_DEFAULT_BUCKETS: readonly number[] = [
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
];

/**
 * stats_config.histogram_bucket_settings (Envoy's HistogramSettingsImpl): the buckets of a histogram are those of
 * the first setting whose `match` matches its full name, sorted; Envoy's defaults otherwise.
 */
export class HistogramBuckets {
  static readonly DEFAULT = new HistogramBuckets([]);

  private constructor(private readonly settings: ReadonlyArray<{ readonly match: Match; readonly buckets: readonly number[] }>) {}

  /** From the decoded `histogram_bucket_settings` list; `path` names it in errors. */
  static fromProto(list: readonly ProtoObject[] | undefined, path: string): HistogramBuckets {
    if (!list || list.length === 0) return HistogramBuckets.DEFAULT;
    return new HistogramBuckets(list.map((s, i) => {
      const match = s['match'] as ProtoObject | null | undefined;
      if (!match) throw new ConfigError('is required', `${path}[${i}].match`);
      const buckets = ((s['buckets'] as number[] | undefined) ?? []).map(Number).sort((a, b) => a - b);
      if (buckets.length === 0) throw new ConfigError('needs at least one bucket', `${path}[${i}].buckets`);
      return { match: stringMatcher(match, `${path}[${i}].match`), buckets };
    }));
  }

  /** The bucket bounds of the histogram of this full name. */
  for(name: string): readonly number[] {
    return this.settings.find((s) => s.match(name))?.buckets ?? ENVOY_DEFAULT_BUCKETS;
  }
}
