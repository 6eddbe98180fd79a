import { fuzzTests } from './harness';
import { pairsTarget } from './targets/pairs';

fuzzTests(pairsTarget);
