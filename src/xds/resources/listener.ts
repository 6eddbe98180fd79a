import { CDS_TYPE_URL, EDS_TYPE_URL, LDS_TYPE_URL } from '../type-urls';
import { jsonResourceType } from './json-resource';

/**
 * LDS: wildcard, requested once the clusters (and the endpoints of warming clusters) are initialized, as
 * Envoy's server starts its LDS subscription from the cluster manager's initialized callback.
 */
export const LISTENER_TYPE = jsonResourceType({
  typeUrl: LDS_TYPE_URL,
  id: 'lds',
  messageName: 'envoy.config.listener.v3.Listener',
  wildcard: true,
  after: [CDS_TYPE_URL, EDS_TYPE_URL],
  // A dynamic listener is added, updated and removed by name (listener_manager_impl.cc).
  check: (json) => (typeof json['name'] === 'string' && json['name'] !== '' ? [] : ['name: a listener from LDS needs a name']),
});
