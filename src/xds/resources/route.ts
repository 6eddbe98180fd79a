import { RDS_TYPE_URL } from '../type-urls';
import { jsonResourceType } from './json-resource';

/** RDS: named by the HTTP connection managers' `rds.route_config_name` (watched through ResourceSubscriber). */
export const ROUTE_TYPE = jsonResourceType({
  typeUrl: RDS_TYPE_URL,
  id: 'rds',
  messageName: 'envoy.config.route.v3.RouteConfiguration',
  wildcard: false,
  after: [],
});
