import { ECDS_TYPE_URL } from '../type-urls';
import { jsonResourceType } from './json-resource';

/** ECDS: named by the HTTP filters' `config_discovery` names; PGV requires the name and a typed_config. */
export const EXTENSION_CONFIG_TYPE = jsonResourceType({
  typeUrl: ECDS_TYPE_URL,
  id: 'ecds',
  messageName: 'envoy.config.core.v3.TypedExtensionConfig',
  wildcard: false,
  after: [],
});
