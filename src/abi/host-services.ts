import type { RedisService } from '../services/redis';
import type { HttpCalloutService } from '../services/http-callout';
import type { GrpcCalloutService } from '../services/grpc-callout';
import type { SharedDataService } from '../services/shared-data';
import type { SharedQueueService } from '../services/shared-queue';
import type { MetricsRegistry } from '../services/metrics';

/** Everything host functions may reach beyond the VM itself. */
export interface HostServices {
  readonly sharedData: SharedDataService;
  readonly sharedQueues: SharedQueueService;
  readonly metrics: MetricsRegistry;
  /** Absent: proxy_redis_* return INTERNAL_FAILURE... unless the cluster is unknown. */
  readonly redis?: RedisService;
  /** Absent: proxy_http_call returns UNIMPLEMENTED. */
  readonly httpCallout?: HttpCalloutService;
  /** Absent: proxy_grpc_call / proxy_grpc_stream return UNIMPLEMENTED. */
  readonly grpcCallout?: GrpcCalloutService;
  /** The host's log level as a proxy_log_level_t (proxy_get_log_level, Higress get_log_level). */
  logLevel(): number;
  /** Observes every host call (name and returned status); the test kit records them. Off the hot path when absent. */
  readonly onHostCall?: (name: string, result: number | undefined) => void;
}
