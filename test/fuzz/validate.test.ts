import { fuzzTests } from './harness';
import { validateTarget } from './targets/validate';

fuzzTests(validateTarget);
