import { fuzzTests } from './harness';
import { bootstrapTarget } from './targets/bootstrap';

fuzzTests(bootstrapTarget);
