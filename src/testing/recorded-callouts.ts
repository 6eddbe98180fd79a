import type { HeaderPairs } from '../common/headers';
import type { HttpCalloutOutcome, HttpCalloutRequest, HttpCalloutResponse, HttpCalloutService } from '../services/http-callout';

export interface RecordedHttpCall {
  readonly request: HttpCalloutRequest;
  cancelled: boolean;
  answered: boolean;
  readonly respond: (response: HttpCalloutResponse) => void;
}

/**
 * An HttpCalloutService for plugin tests: it records every proxy_http_call the plugin makes and lets the test
 * answer each one (like proxytest's GetHttpCalloutAttributes / PutCalloutResponse). Answers are delivered
 * asynchronously, as a real callout would be. Clusters not in `knownClusters` are refused (BAD_ARGUMENT).
 */
export class RecordedHttpCallouts implements HttpCalloutService {
  readonly calls: RecordedHttpCall[] = [];
  constructor(private readonly knownClusters: ReadonlySet<string>) {}

  call(request: HttpCalloutRequest, onResponse: (response: HttpCalloutResponse) => void): HttpCalloutOutcome {
    if (!this.knownClusters.has(request.cluster)) return { status: 'unknown_cluster' };
    const record: RecordedHttpCall = {
      request,
      cancelled: false,
      answered: false,
      respond: (response) => {
        if (record.cancelled || record.answered) return;
        record.answered = true;
        setImmediate(() => onResponse(response));
      },
    };
    this.calls.push(record);
    return { status: 'ok', cancel: () => void (record.cancelled = true) };
  }

  /** Convenience: answer call `index` with a status, body and optional extra headers/trailers. */
  answer(index: number, status: number, body: string | Buffer = '', headers: HeaderPairs = [], trailers: HeaderPairs = []): void {
    const call = this.calls[index];
    if (!call) throw new Error(`no recorded callout #${index}`);
    call.respond({ headers: [[':status', String(status)], ...headers], body: Buffer.from(body), trailers });
  }

  /** Answer call `index` as a reset/timeout: zero headers, as Envoy reports a failed callout. */
  fail(index: number): void {
    const call = this.calls[index];
    if (!call) throw new Error(`no recorded callout #${index}`);
    call.respond({ headers: [], body: Buffer.alloc(0), trailers: [] });
  }
}
