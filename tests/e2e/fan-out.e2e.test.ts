import { fanOutSuite } from './fan-out-suite.ts';

fanOutSuite('single Redis');
