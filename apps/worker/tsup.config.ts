import { appBundle } from '../../tsup.app.ts';

// The dataset-profile worker thread is its own file, found next to main.js at run time
// (apps/worker/src/analyses/dataset-profile/profile-thread-client.ts).
export default appBundle({
  main: 'src/main.ts',
  'dataset-profile-thread': 'src/analyses/dataset-profile/profile-thread.ts',
});
