/**
 * Envoy's tag extraction (source/common/stats/tag_producer_impl.cc, tag_extractor_impl.cc): every stat name is
 * run through a list of extractors; each one that matches adds a tag (name, value) and marks a span of the name
 * for removal; the tag-extracted name is the name with every marked span removed. Prometheus output prints the
 * tag-extracted name with the tags as labels; /stats keeps the full name.
 *
 * Extractors, as in Envoy:
 * - regex (`stats_tags[].regex`, std::regex ECMAScript, searched anywhere in the name): the first capture group
 *   is removed, the second (or, without one, the first) is the tag value;
 * - fixed (`stats_tags[].fixed_value`): the tag on every stat, nothing removed;
 * - tokens (Envoy's built-in `cluster.$.**` form): `$` is the value token, `*` one token, `**` any tokens;
 * - the built-in RE2 ones, which need a non-empty first group and may name a value that never counts
 *   (`negative_match`, e.g. listener `admin`).
 * Extractors whose regex starts with a literal `^token\.` run only for names whose first token is that token,
 * after the extractors without such a prefix; when several extractors share a tag name, the first to match wins.
 */
import { ConfigError } from '../common/errors';

export interface Tag {
  readonly name: string;
  readonly value: string;
}

/** One `envoy.config.metrics.v3.TagSpecifier`. */
export interface TagSpecifier {
  readonly tagName: string;
  readonly regex?: string;
  readonly fixedValue?: string;
}

/** The part of `envoy.config.metrics.v3.StatsConfig` that drives tag extraction. */
export interface TagConfig {
  readonly statsTags: readonly TagSpecifier[];
  /** `use_all_default_tags`; Envoy's default is true. */
  readonly useAllDefaultTags: boolean;
}

export interface ExtractedName {
  readonly tagExtractedName: string;
  readonly tags: readonly Tag[];
}

type Span = [start: number, end: number];

interface Extractor {
  readonly name: string;
  /** First token a name must have for this extractor to run; '' runs on every name. */
  readonly prefix: string;
  extract(name: string, tokens: () => readonly string[], tags: Tag[], remove: Span[]): boolean;
}

/** Envoy's TagExtractorImplBase::extractRegexPrefix: `^abc\.` (or `^abc(?=\.)`, or `^abc$`) gives `abc`. */
function regexPrefix(regex: string): string {
  if (!regex.startsWith('^')) return '';
  for (let i = 1; i < regex.length; i++) {
    const c = regex[i]!;
    if (/[A-Za-z0-9_]/.test(c)) continue;
    if (i > 1) {
      const last = i === regex.length - 1;
      const rest = regex.slice(i);
      if ((!last && (rest.startsWith('\\.') || rest.startsWith('(?=\\.)'))) || (last && c === '$')) return regex.slice(1, i);
    }
    return '';
  }
  return '';
}

/** POSIX classes std::regex accepts inside brackets and JavaScript does not. */
const POSIX_CLASSES: Readonly<Record<string, string>> = {
  digit: '0-9', alpha: 'A-Za-z', alnum: 'A-Za-z0-9', upper: 'A-Z', lower: 'a-z', xdigit: '0-9A-Fa-f', space: '\\s', w: '\\w', d: '0-9', s: '\\s',
  punct: '!-\\/:-@\\[-`{-~', blank: ' \\t', cntrl: '\\x00-\\x1f\\x7f', print: '\\x20-\\x7e', graph: '\\x21-\\x7e',
};

/** Compiles an std::regex (ECMAScript grammar) as a JavaScript RegExp: the grammars differ only in POSIX classes. */
export function compileStdRegex(regex: string, path: string): RegExp {
  const source = regex.replace(/\[:([a-z]+):\]/g, (whole, cls: string) => {
    const js = POSIX_CLASSES[cls];
    if (js === undefined) throw new ConfigError(`Invalid regex '${regex}': unknown character class [:${cls}:]`, path);
    return js;
  });
  try {
    return new RegExp(source);
  } catch (err) {
    throw new ConfigError(`Invalid regex '${regex}': ${(err as Error).message}`, path, { cause: err });
  }
}

class RegexExtractor implements Extractor {
  readonly prefix: string;
  constructor(
    readonly name: string,
    private readonly regex: RegExp,
    source: string,
    /** Envoy's `substr`: a literal the name must contain for the regex to be tried (a cheap pre-filter). */
    private readonly substr = '',
    /** RE2 extractors: the first group must be non-empty, and an empty second group falls back to the first. */
    private readonly re2 = false,
    private readonly negativeMatch = '',
  ) {
    this.prefix = regexPrefix(source);
  }

  extract(name: string, _tokens: () => readonly string[], tags: Tag[], remove: Span[]): boolean {
    if (this.substr !== '' && !name.includes(this.substr)) return false;
    const m = this.regex.exec(name);
    if (!m || m.length < 2) return false;
    const removed = m[1];
    const removedAt = m.indices?.[1];
    if (this.re2 && !removed) return false;
    let value = m.length > 2 ? m[2] : removed;
    if (this.re2 && !value) value = removed;
    if (this.negativeMatch !== '' && value === this.negativeMatch) return false;
    tags.push({ name: this.name, value: value ?? '' });
    // An unmatched first group removes nothing (std::regex gives an empty sub-match).
    if (removedAt) remove.push([removedAt[0], removedAt[1]]);
    return true;
  }
}

class TokensExtractor implements Extractor {
  readonly prefix: string;
  private readonly pattern: readonly string[];
  private readonly matchIndex: number;
  constructor(
    readonly name: string,
    pattern: string,
  ) {
    this.pattern = pattern.split('.');
    this.matchIndex = this.pattern.indexOf('$');
    const first = this.pattern[0]!;
    this.prefix = first === '$' || first === '*' || first === '**' ? '' : first;
  }

  extract(_name: string, tokens: () => readonly string[], tags: Tag[], remove: Span[]): boolean {
    const input = tokens();
    const found = { start: 0, index: -1 };
    if (!this.search(input, 0, 0, 0, found) || found.index < 0) return false;
    const value = input[found.index]!;
    let start = found.start;
    let end = start + value.length;
    // Remove the dot after the value token, or before it when it is the last token (Envoy's three cases).
    if (found.index < input.length - 1) end++;
    else if (start > 0) start--;
    tags.push({ name: this.name, value });
    remove.push([start, end]);
    return true;
  }

  /** Envoy's TagExtractorTokensImpl::searchTags: matches the pattern from (input, pattern) onwards. */
  private search(input: readonly string[], from: number, patternFrom: number, charFrom: number, found: { start: number; index: number }): boolean {
    let i = from;
    let p = patternFrom;
    let c = charFrom;
    for (; i < input.length && p < this.pattern.length; i++, p++) {
      const token = input[i]!;
      if (p === this.matchIndex) {
        found.start = c;
        found.index = i;
      } else {
        const expected = this.pattern[p]!;
        if (expected === '**') {
          if (p === this.pattern.length - 1) return true;
          // "**" before the end: the rest of the pattern must match from some later token.
          for (let j = i; j < input.length; j++) {
            if (this.search(input, j, p + 1, c, found)) return true;
            c += input[j]!.length + 1;
          }
          return false;
        }
        if (expected !== '*' && expected !== token) return false;
      }
      c += token.length + 1;
    }
    return p === this.pattern.length && i === input.length;
  }
}

class FixedExtractor implements Extractor {
  readonly prefix = '';
  constructor(
    readonly name: string,
    private readonly value: string,
  ) {}

  extract(_name: string, _tokens: () => readonly string[], tags: Tag[]): boolean {
    tags.push({ name: this.name, value: this.value });
    return true;
  }
}

/** Envoy's `expandRegex` substitutions for the built-in RE2 descriptors. */
const TAG_VALUE = '[^.]+';
const ADDRESS = '(?:(?:\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}|\\[[a-fA-F_\\d]+\\])_\\d+)';
const CIPHER = '[\\w-]+';
const LISTENER_OR_CLUSTER = '(?:listener|cluster)\\..*?';

type Descriptor =
  | { readonly name: string; readonly re2: string; readonly substr?: string; readonly negativeMatch?: string }
  | { readonly name: string; readonly tokens: string };

/**
 * Envoy's default tag descriptors (source/common/config/well_known_names.cc), in Envoy's order, with the
 * sidecar's two differences:
 * - `envoy.cluster_name` matches cluster names with dots (`outbound|80||svc.ns.svc.cluster.local`), with the
 *   regex Istio and Higress put in every bootstrap, instead of Envoy's one-token `cluster.$.**`;
 * - the sidecar's Redis pool stats `redis.<cluster>.<stat>` are per cluster, so their tag is
 *   `envoy.cluster_name` (Envoy's `redis.$.**` names a redis_proxy stat_prefix, which the sidecar has not).
 */
const DEFAULT_DESCRIPTORS: readonly Descriptor[] = [
  { name: 'envoy.response_code', re2: '_rq(_(\\d{3}))$', substr: '_rq_' },
  { name: 'envoy.response_code_class', re2: '_rq_((\\d))xx$', substr: '_rq_' },
  { name: 'envoy.dynamo_partition_id', re2: `^http\\.${TAG_VALUE}\\.dynamodb\\.table\\.${TAG_VALUE}\\.capacity\\.${TAG_VALUE}(\\.__partition_id=(\\w{7}))$`, substr: '.dynamodb.table.' },
  { name: 'envoy.dynamo_operation', re2: `^http\\.${TAG_VALUE}\\.dynamodb.(?:operation|table\\.${TAG_VALUE}\\.capacity)(\\.(${TAG_VALUE}))(?:\\.|$)`, substr: '.dynamodb.' },
  { name: 'envoy.mongo_callsite', tokens: 'mongo.*.collection.*.callsite.$.query.**' },
  { name: 'envoy.dynamo_table', re2: `^http\\.${TAG_VALUE}\\.dynamodb.(?:table|error)\\.((${TAG_VALUE})\\.)`, substr: '.dynamodb.' },
  { name: 'envoy.mongo_collection', tokens: 'mongo.*.collection.$.**.query.*' },
  { name: 'envoy.mongo_cmd', tokens: 'mongo.*.cmd.$.**' },
  { name: 'envoy.grpc_bridge_method', tokens: 'cluster.*.grpc.*.$.**' },
  { name: 'envoy.http_user_agent', tokens: 'http.*.user_agent.$.**' },
  { name: 'envoy.virtual_cluster', tokens: 'vhost.*.vcluster.$.**' },
  { name: 'envoy.fault_downstream_cluster', tokens: 'http.*.fault.$.**' },
  { name: 'cipher', re2: `^listener\\..*?\\.ssl\\.ciphers(\\.(${CIPHER}))$`, substr: '.ssl.ciphers.' },
  { name: 'curve', re2: `^${LISTENER_OR_CLUSTER}\\.ssl\\.curves(\\.(${CIPHER}))$`, substr: '.ssl.curves.' },
  { name: 'sigalg', re2: `^${LISTENER_OR_CLUSTER}\\.ssl\\.sigalgs(\\.(${CIPHER}))$`, substr: '.ssl.sigalgs.' },
  { name: 'tls_version', re2: `^${LISTENER_OR_CLUSTER}\\.ssl\\.versions(\\.(TLSv\\d\\.\\d))$`, substr: '.ssl.versions.' },
  { name: 'cipher_suite', re2: `^cluster\\.${TAG_VALUE}\\.ssl\\.ciphers(\\.(${CIPHER}))$`, substr: '.ssl.ciphers.' },
  { name: 'envoy.grpc_bridge_service', tokens: 'cluster.*.grpc.$.**' },
  { name: 'envoy.tcp_prefix', tokens: 'tcp.$.**' },
  { name: 'envoy.udp_prefix', tokens: 'udp.$.**' },
  { name: 'envoy.clientssl_prefix', tokens: 'auth.clientssl.$.**' },
  { name: 'envoy.ratelimit_prefix', tokens: 'ratelimit.$.**' },
  { name: 'envoy.cluster_name', re2: '^cluster\\.((.*?)\\.)(?:http1\\.|http2\\.|health_check\\.|zone\\.|external\\.|circuit_breakers\\.|[^.]+$)' },
  { name: 'envoy.http_conn_manager_prefix', re2: `^listener\\..*?\\.http\\.((${TAG_VALUE})\\.)`, substr: '.http.' },
  { name: 'envoy.ext_authz_prefix', tokens: 'cluster.*.ext_authz.$.**' },
  { name: 'envoy.ext_authz_prefix', tokens: 'http.*.ext_authz.$.**' },
  { name: 'envoy.http_conn_manager_prefix', tokens: 'http.$.**' },
  { name: 'envoy.worker_id', re2: `^(?:listener\\.(?:${ADDRESS}|${TAG_VALUE})\\.|server\\.|listener_manager\\.)worker_((\\d+)\\.)` },
  { name: 'envoy.listener_address', re2: `^listener\\.((${ADDRESS}|${TAG_VALUE})\\.)`, negativeMatch: 'admin' },
  { name: 'envoy.virtual_host', tokens: 'vhost.$.**' },
  { name: 'envoy.mongo_prefix', tokens: 'mongo.$.**' },
  { name: 'envoy.rds_route_config', re2: `^http\\.${TAG_VALUE}\\.rds\\.((${'[\\w\\-.]+'})\\.)\\w+?$`, substr: '.rds.' },
  { name: 'envoy.route', tokens: 'vhost.*.route.$.**' },
  { name: 'envoy.thrift_prefix', tokens: 'thrift.$.**' },
  { name: 'envoy.cluster_name', re2: '^redis\\.((.*?)\\.)[^.]+$' },
  { name: 'envoy.http_local_rate_limit_prefix', tokens: '$.http_local_rate_limit.**' },
  { name: 'envoy.local_network_ratelimit_prefix', tokens: 'local_rate_limit.$.**' },
  { name: 'envoy.local_listener_ratelimit_prefix', tokens: 'listener_local_ratelimit.$.**' },
  { name: 'envoy.dns_filter_prefix', tokens: 'dns_filter.$.**' },
];

function fromDescriptor(d: Descriptor): Extractor {
  if ('tokens' in d) return new TokensExtractor(d.name, d.tokens);
  return new RegexExtractor(d.name, new RegExp(d.re2, 'd'), d.re2, d.substr, true, d.negativeMatch);
}

/** Removes the union of `spans` from `name` (Envoy's StringUtil::removeCharacters over an IntervalSet). */
function removeSpans(name: string, spans: Span[]): string {
  if (spans.length === 0) return name;
  spans.sort((a, b) => a[0] - b[0]);
  let out = '';
  let at = 0;
  for (const [start, end] of spans) {
    if (start > at) out += name.slice(at, start);
    at = Math.max(at, end);
  }
  return out + name.slice(at);
}

/** Most stat names repeat on every scrape; the cache is dropped whole when it grows past this. */
const CACHE_LIMIT = 100_000;

/** Envoy's TagProducerImpl. Built once from the bootstrap's stats_config; errors carry their field path. */
export class TagProducer {
  private readonly withoutPrefix: Extractor[] = [];
  private readonly byPrefix = new Map<string, Extractor[]>();
  /** Tag names produced by more than one extractor: only the first match of each counts. */
  private readonly shared = new Set<string>();
  private readonly cache = new Map<string, ExtractedName>();

  /** `path` is where the StatsConfig sits, for errors (`stats_config`). */
  constructor(config: TagConfig = { statsTags: [], useAllDefaultTags: true }, path = 'stats_config') {
    const names = new Set<string>();
    const add = (e: Extractor): void => {
      if (names.has(e.name)) this.shared.add(e.name);
      names.add(e.name);
      if (e.prefix === '') this.withoutPrefix.push(e);
      else {
        const list = this.byPrefix.get(e.prefix);
        if (list) list.push(e);
        else this.byPrefix.set(e.prefix, [e]);
      }
    };
    if (config.useAllDefaultTags) for (const d of DEFAULT_DESCRIPTORS) add(fromDescriptor(d));
    config.statsTags.forEach((spec, i) => {
      const p = `${path}.stats_tags[${i}]`;
      if (spec.tagName === '') throw new ConfigError('tag_name cannot be empty', `${p}.tag_name`);
      if (spec.fixedValue !== undefined) {
        add(new FixedExtractor(spec.tagName, spec.fixedValue));
      } else if (spec.regex === undefined || spec.regex === '') {
        // Envoy: a tag_name alone selects the default extractors of that name.
        const defaults = DEFAULT_DESCRIPTORS.filter((d) => d.name === spec.tagName);
        if (defaults.length === 0) throw new ConfigError(`No regex specified for tag specifier and no default regex for name: '${spec.tagName}'`, `${p}.regex`);
        for (const d of defaults) add(fromDescriptor(d));
      } else {
        const re = compileStdRegex(spec.regex, `${p}.regex`);
        add(new RegexExtractor(spec.tagName, new RegExp(re.source, 'd'), spec.regex));
      }
    });
  }

  /** The tag-extracted name and the tags of one full stat name, in Envoy's order. */
  produce(name: string): ExtractedName {
    const cached = this.cache.get(name);
    if (cached) return cached;
    const tags: Tag[] = [];
    const remove: Span[] = [];
    let tokens: string[] | undefined;
    const tokensOf = (): readonly string[] => (tokens ??= name.split('.'));
    const matched = new Set<string>();
    const run = (e: Extractor): void => {
      const dup = this.shared.has(e.name);
      if (dup && matched.has(e.name)) return;
      if (e.extract(name, tokensOf, tags, remove) && dup) matched.add(e.name);
    };
    for (const e of this.withoutPrefix) run(e);
    const dot = name.indexOf('.');
    if (dot >= 0) for (const e of this.byPrefix.get(name.slice(0, dot)) ?? []) run(e);
    const out = { tagExtractedName: removeSpans(name, remove), tags };
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(name, out);
    return out;
  }
}
