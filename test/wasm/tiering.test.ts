import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyWasmTieringBudget } from '../../src/wasm/tiering';

// The CLI raises V8's Wasm tiering budget (src/wasm/tiering.ts) unless the operator chose one.
describe('the Wasm tiering budget', () => {
  it('is left as the operator set it, on the node command line or in NODE_OPTIONS, in either spelling', () => {
    assert.equal(applyWasmTieringBudget(['--wasm-tiering-budget=5000'], ''), false);
    assert.equal(applyWasmTieringBudget(['--expose-gc', '--wasm_tiering_budget=5000'], ''), false);
    assert.equal(applyWasmTieringBudget([], '--max-old-space-size=512 --wasm-tiering-budget=5000'), false);
  });

  it('is set when nobody chose one, a flag of another name notwithstanding', () => {
    assert.equal(applyWasmTieringBudget(['--wasm-tiering-budget-x=1', '--expose-gc'], '--wasm-lazy-compilation'), true);
  });
});
