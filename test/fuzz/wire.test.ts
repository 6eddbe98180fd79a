import { fuzzTests } from './harness';
import { wireTarget } from './targets/wire';

fuzzTests(wireTarget);
