import { fuzzTests } from './harness';
import { pluginConfigTarget } from './targets/plugin-config';

fuzzTests(pluginConfigTarget);
