import { pipelineSuite } from './pipeline-suite.ts';

pipelineSuite('single Redis');
