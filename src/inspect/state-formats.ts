// The one list of the kinds of files a state dir holds, each with its format: the plugin migrates with it at start
// (cli serve), and the readers (status, doctor, gc) report the state's formats with it. docs/state.md describes them.
import { CLUSTER_INTENT_FILES } from '../cluster/intents';
import { ENDPOINT_RECORD_FILES, NETWORK_RECORD_FILES } from '../driver/record-formats';
import { IPAM_JOURNAL_FILES } from '../ipam/journal';
import { INSTANCE_FILE } from '../state/instance';
import type { StateFiles } from '../state/migrate';

export const STATE_FILES: readonly StateFiles[] = [
  INSTANCE_FILE,
  NETWORK_RECORD_FILES,
  ENDPOINT_RECORD_FILES,
  IPAM_JOURNAL_FILES,
  CLUSTER_INTENT_FILES,
];
