// The test control plane lives in src/testing (the examples run it as a command); tests import it from here.
export * from '../../src/testing/xds-control-plane';
