import { fuzzTests } from './harness';
import { respTarget } from './targets/resp';

fuzzTests(respTarget);
